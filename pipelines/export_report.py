"""The report section of the trainer exports (packing waste, split documents, weights, blend lines), from the
manifest's ``export`` entry."""

from __future__ import annotations

from typing import Any


def report_section(export: dict[str, Any]) -> dict[str, Any] | None:
    """The report section of the trainer exports, from the manifest's ``export`` entry (``export_manifest``).

    Tables: per packed stage (sequences, tokens, padding waste, split documents, long-context share), per
    component (tokens, documents, epochs, token share = the Megatron blend weight), and the blend lines.
    """
    if not export:
        return None
    summary: dict[str, Any] = {}
    tables: list[dict[str, Any]] = []
    notes: list[str] = []
    packed = export.get("packed") or []
    if packed:
        rows = []
        for p in packed:
            cap = p.get("capacity") or 0
            docs = p.get("docs") or 0
            rows.append([p["seq_len"], p["split"], p["policy"], p["sequences"], p["tokens"],
                         f"{100 * p['padding'] / cap:.2f} %" if cap else "-",
                         p["split_docs"], f"{100 * p['split_docs'] / docs:.2f} %" if docs else "-",
                         f"{100 * p['long_sequences'] / p['sequences']:.1f} %" if p["sequences"] else "-",
                         p["left_out_tokens"]])
            if p.get("left_out_sequences"):
                notes.append(f"seq_len {p['seq_len']} ({p['split']}): {p['left_out_sequences']:,} short-only "
                             f"sequences ({p['left_out_tokens']:,} tokens) left out to reach the long-context "
                             f"share {p['long_context_share']:.0%}; they stay in the mixture and other stages")
        tables.append({"title": "Packed sequences (padding waste = padding / sequence capacity)",
                       "columns": ["seq_len", "split", "policy", "sequences", "tokens", "padding", "split docs",
                                   "split share", "long-context seqs", "tokens left out"], "rows": rows})
        compare = export.get("policies") or []
        if compare:
            tables.append({"title": "Padding waste and split documents per policy (same documents; the other "
                           "policy is computed, not written)",
                           "columns": ["seq_len", "split", "policy", "sequences", "padding", "split docs"],
                           "rows": [[p["seq_len"], p["split"], p["policy"], p["sequences"],
                                     f"{100 * p['padding'] / p['capacity']:.2f} %" if p["capacity"] else "-",
                                     f"{p['split_docs']:,} ({100 * p['split_docs'] / p['docs']:.1f} %)"
                                     if p["docs"] else "0"] for p in compare]})
        train = [p for p in packed if p["split"] == "train"]
        for p in train:
            cap = p.get("capacity") or 0
            summary[f"padding waste @ {p['seq_len']} ({p['policy']})"] = (
                f"{100 * p['padding'] / cap:.2f} %" if cap else "-")
    comps = export.get("components") or {}
    if comps:
        rows = [[name, c["split"], c["tokens"], c["docs"], c["rows"], round(c["epochs"], 3), round(c["weight"], 6)]
                for name, c in sorted(((k.split("/", 1)[1], v) for k, v in comps.items()),
                                      key=lambda kv: (kv[1]["split"], -kv[1]["tokens"], kv[0]))]
        tables.append({"title": "Components: weights are token shares (the Megatron blend weight); epochs = rows "
                       "per unique document", "columns": ["component", "split", "tokens", "documents", "rows",
                                                           "epochs", "weight"], "rows": rows})
    blend = export.get("blend") or {}
    for key in ("megatron_train", "megatron_valid"):
        if blend.get(key):
            notes.append(f"{key.replace('_', ' ')}: {blend[key]}")
    if blend.get("hf_interleave"):
        notes.append("HF datasets: " + blend["hf_interleave"])
    files = export.get("files") or []
    summary["files written"] = len(files)
    summary["bytes written"] = sum(f.get("bytes", 0) for f in files)
    notes.extend(export.get("notes") or [])
    return {"summary": summary, "tables": tables, "notes": notes}
