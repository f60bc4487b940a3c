"""The default domain taxonomy: 24 topics and 24 formats, after WebOrganizer (Wettig et al. 2025).

Two independent axes: what a page is *about* (topic) and what *kind* of page it is (format). The label sets
follow WebOrganizer's; the descriptions are qurate's own, written to be read by an embedding model (zero-shot,
as the label's prototype text) and by an LLM judge (as the option text). One change: e-commerce gets its own topic,
``shopping`` (Qwen2.5 down-samples it by name), and fashion & beauty fold into it.

A recipe may replace either list; labels are ``snake_case`` ids, descriptions one or two plain sentences.
"""

from __future__ import annotations

TOPICS: tuple[tuple[str, str], ...] = (
    ("adult", "Sexually explicit material, pornography, escort and dating-for-sex services, erotic stories."),
    ("art_design", "Visual arts, painting, photography, architecture, graphic and interior design, museums."),
    ("crime_law", "Crime, police, courts, lawsuits, legislation, legal rights, contracts and software licences."),
    ("education_jobs", "Schools, universities, teaching, courses, exams, careers, job postings and hiring."),
    ("entertainment", "Movies, television, music, celebrities, streaming, concerts and pop culture gossip."),
    ("finance_business", "Companies, markets, investing, banking, economics, accounting, management, startups."),
    ("food_dining", "Recipes, cooking, ingredients, restaurants, drinks, nutrition of meals."),
    ("games", "Video games, board games, card games, puzzles, gaming consoles, esports, gambling."),
    ("hardware", "Computer hardware, electronics, chips, devices, phones, circuits, networking equipment."),
    ("health", "Medicine, diseases, symptoms, treatments, mental health, fitness advice, healthcare."),
    ("history", "Past events, historical figures, wars, ancient civilisations, archaeology, genealogy."),
    ("home_hobbies", "Home improvement, gardening, pets, crafts, DIY projects, parenting and family life."),
    ("industrial", "Manufacturing, engineering, construction, energy, agriculture, mining, logistics."),
    ("literature", "Books, novels, poetry, authors, literary criticism, writing and publishing."),
    ("politics", "Government, elections, political parties, public policy, international relations, activism."),
    ("religion", "Religions, faith, churches, scripture, theology, spirituality and religious practice."),
    ("science_tech", "Natural sciences, mathematics, research, physics, chemistry, biology, technology studies."),
    ("shopping", "Online shops, product offers, prices, deals, coupons, fashion, beauty and consumer goods."),
    ("social_life", "Relationships, friendship, social media, everyday life, lifestyle, personal stories."),
    ("software", "Using computer programs and operating systems: commands, settings, apps, IT administration."),
    ("software_dev", "Programming, source code, APIs, libraries, software engineering and developer tools."),
    ("sports_fitness", "Sports teams, matches, athletes, leagues, exercise, outdoor activities."),
    ("transportation", "Cars, vehicles, aviation, railways, shipping, roads, traffic and public transport."),
    ("travel", "Tourism, destinations, hotels, flights, holidays, travel guides, local attractions."),
)

FORMATS: tuple[tuple[str, str], ...] = (
    ("about_org", "A page describing an organisation, company or project: who we are, mission, contact."),
    ("about_person", "A personal profile, biography, CV or an author's about-me page."),
    ("academic_writing", "A scholarly paper, thesis or abstract with formal argument, citations and methods."),
    ("comment_section", "Reader comments or replies under an article or post, many short voices."),
    ("content_listing", "A listing or index page: links, article teasers, categories, navigation, search results."),
    ("creative_writing", "Fiction, poetry, song lyrics, fan fiction or other imaginative writing."),
    ("customer_support", "Help-centre or support pages: account issues, troubleshooting for customers, policies."),
    ("documentation", "Technical reference or manual: command options, API reference, specifications."),
    ("faq", "Frequently asked questions with their answers."),
    ("knowledge_article", "An encyclopedic, neutral explanation of a subject, like a wiki article."),
    ("legal_notice", "Legal text: licence, terms of service, privacy policy, copyright notice, contract."),
    ("listicle", "A numbered or bulleted list article such as 'ten best ways to ...'."),
    ("news_article", "A news report on recent events, written by journalists, with dateline and quotes."),
    ("news_org", "Press release or announcement by an organisation about itself."),
    ("nonfiction_writing", "An essay, opinion piece, feature or long-form non-fiction prose."),
    ("personal_blog", "A personal blog post or diary entry written in the first person."),
    ("product_page", "A product or shop page: item description, price, add to cart, specifications."),
    ("qa_forum", "A question asked on a forum or Q&A site with answers from other users."),
    ("spam_ads", "Spam, advertising, keyword-stuffed or auto-generated promotional text."),
    ("structured_data", "Tables, data records, catalogues, lists of values or translations, little prose."),
    ("transcript", "A transcript of speech: interview, podcast, talk, meeting or video captions."),
    ("truncated", "A fragment too short or cut off to tell what it is."),
    ("tutorial", "Step-by-step instructions or a how-to guide teaching how to do something."),
    ("user_review", "A user's review or rating of a product, place, book or service."),
)
