"""A recipe's YAML, read strictly: a size cap, no key given twice in one mapping, and a cap on the values YAML
aliases expand to (an alias bomb is an error, not an out-of-memory)."""

from __future__ import annotations

from typing import Any

import yaml
from qurate.pipelines.recipe import RecipeError

MAX_RECIPE_BYTES = 1 << 20  # a recipe is configuration: a larger file is a mistake or an attack
MAX_YAML_NODES = 100_000  # values in the recipe once every alias is expanded (a 511-byte alias bomb has 10^9)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (not the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports an unhashable key
            if key in seen:
                raise RecipeError(f"duplicate key '{key}' in the recipe: lines {seen[key].line + 1} and "
                                  f"{key_node.start_mark.line + 1} (YAML would keep the last one silently)")
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(root: yaml.Node) -> int:
    """How many values ``root`` stands for with every alias expanded (each shared node sized once)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            sizes[id(node)] = 1
            continue
        if done:
            sizes[id(node)] = min(1 + sum(sizes.get(id(c), 0) for c in children), 10 * MAX_YAML_NODES)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_yaml(text: str, name: str = "recipe") -> Any:
    """A recipe's YAML, strictly: at most ``MAX_RECIPE_BYTES``, no duplicate keys, at most ``MAX_YAML_NODES``
    values once aliases are expanded. Raises ``RecipeError``."""
    if len(text.encode("utf-8")) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {name} is larger than {MAX_RECIPE_BYTES:,} bytes")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_nodes(node) > MAX_YAML_NODES:
            raise RecipeError(f"recipe {name} expands to more than {MAX_YAML_NODES:,} values through YAML "
                              f"aliases (&/*); write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()
