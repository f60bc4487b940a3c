"""Per-document filters: language ID (``langid``), datatrove's heuristic rules and user plug-ins (``heuristics``).

- ``langid``: fastText LID over length-weighted chunks, ISO 639-1 codes, thresholds, allow-list;
- ``langcodes``: code normalization, Qwen2.5's languages, confusable groups;
- ``second_opinion``: lingua inside a confusable group when fastText is unsure;
- ``heuristics``: Gopher / FineWeb / C4 rule families per language and source, then custom filters;
- ``heuristics_rules``: those rules computed in one pass, with datatrove's decisions;
- ``words``: script-aware word splitting handed to datatrove's filters; ``stopwords``: per-language lists;
- ``measures``: the measured value behind each rejection; ``plugins``: loading custom filters.
"""
