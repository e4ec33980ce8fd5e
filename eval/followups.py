"""Follow-up questions in conversations: nDCG@10 of a pronoun follow-up with and without rewriting, on SciFact.

Each case is two turns built by hand from one SciFact test claim: turn 1 names the claim's subject ("What is
ADAR1?"), turn 2 asks the rest of the claim about it by pronoun ("Does it bind to Dicer to cleave pre-miRNA?"), so
turn 2 only makes sense after turn 1. Turn 2 is judged with the claim's qrels, in three runs through the real API
(hybrid retrieval, no rerank):

- as_asked:   turn 2 alone, no conversation: what retrieval got before conversations existed;
- rewritten:  turn 2 inside the conversation, after turn 1: the backend rewrites it (the deterministic fallback
              here, the stack having no LLM; with --backend-url and an LLM chain, the LLM's rewriting);
- claim:      the original claim, self-contained: the ceiling.

Controls: a self-contained claim asked after an unrelated turn must be searched exactly as asked (its search_query
unchanged), so the rewriting never costs a question that needs none. Nothing here is tuned on these queries: the
rules were written from the issue's examples, the cases afterwards.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

# (SciFact test query id, turn 1 naming the subject, turn 2 referring to it)
CASES: list[tuple[str, str, str]] = [
    ("1", "What are 0-dimensional biomaterials?", "Do they show inductive properties?"),
    ("3", "What is the 1,000 genomes project?", "Does it map rare variants with larger penetrance?"),
    ("36", "What does a deficiency of vitamin B12 cause?", "Does it increase blood homocysteine?"),
    ("49", "What is ADAR1?", "Does it bind to Dicer to cleave pre-miRNA?"),
    ("50", "What is AIRE?", "Is it expressed in some skin tumors?"),
    ("53", "What is known about ALDH1 expression?", "Is it associated with poorer prognosis in breast cancer?"),
    ("54", "What does AMP-activated protein kinase (AMPK) activation do?", "Does it increase fibrosis in the lungs?"),
    ("70", "What is PPM1D?", "Does its activation suppress p53 function?"),
    ("75", "What is the structure of active H. pylori urease?", "Is it polymeric with two subunits, UreA and UreB?"),
    ("94", "What is albendazole?", "Is it used to treat lymphatic filariasis?"),
    ("99", "What is alizarin?", "Does it bind residues of the PGAM1 substrate site?"),
    ("113", "What are angiotensin converting enzyme inhibitors?", "Are they linked to functional renal insufficiency?"),
    ("118", "What do antibiotics do to the gut microbiome?", "Do these alterations reduce resistance to C. difficile?"),
    ("124", "What is antiretroviral therapy?", "Does it reduce tuberculosis rates across CD4 strata?"),
    ("128", "How large are arterioles?", "Is their lumen diameter larger than in venules?"),
    ("132", "What does aspirin inhibit?", "Does it inhibit the production of PGE2?"),
    ("141", "What is auditory entrainment?", "Is it strengthened by congruent visual and auditory information?"),
    ("148", "What happens to autophagy?", "Does it decline in aged organisms?"),
    ("163", "What are the effects of bariatric surgery?", "Does it have a positive impact on mental health?"),
    ("171", "What do basophils do in systemic lupus erythematosus?", "Do they counteract disease development?"),
    ("179", "What is known about birth weight?", "Is it positively associated with breast cancer?"),
    ("183", "Where do bone marrow cells go?", "Do they contribute to adult macrophage compartments?"),
    ("198", "What is CCL19?", "Is it absent within dLNs?"),
    ("208", "What is CHEK2?", "Is it associated with breast cancer?"),
    ("212", "What is caloric restriction (CR)?", "Is it associated with higher methylation age?"),
    ("213", "What is CRP?", "Does it predict postoperative mortality after CABG surgery?"),
    ("218", "What does CX3CR1 on Th2 cells do?", "Does it promote airway inflammation?"),
]
# (SciFact test query id: its claim asked as is, after the turn 1 of an unrelated case)
CONTROLS: list[tuple[str, str]] = [
    ("5", "What is ADAR1?"),
    ("13", "What is alizarin?"),
    ("36", "What is CCL19?"),
    ("100", "What are 0-dimensional biomaterials?"),
    ("132", "What is antiretroviral therapy?"),
    ("148", "What is CHEK2?"),
    ("163", "What is AIRE?"),
    ("183", "What does aspirin inhibit?"),
]
RUNS = ("as_asked", "rewritten", "claim")


def _ask(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/query", json=body)
    r.raise_for_status()
    return dict(r.json())


def _conversation(client: httpx.Client, title: str) -> str:
    r = client.post("/api/conversations", json={"title": title})
    r.raise_for_status()
    return str(r.json()["id"])


def followup_runs(
    client: httpx.Client, queries: dict[str, str], collection: str, chunks: int, docs: Any
) -> dict[str, Any]:
    """The three runs over the cases whose claim is among `queries`, and the controls; `docs` folds chunk results
    to document ids. Conversations made here are deleted afterwards."""
    base = {"collection": collection, "top_k": chunks, "dense": True, "sparse": True, "rerank": False}
    runs: dict[str, dict[str, list[str]]] = {name: {} for name in RUNS}
    searched: dict[str, str] = {}
    made: list[str] = []
    start = time.perf_counter()
    for qid, first, followup in CASES:
        if qid not in queries:
            continue
        conv = _conversation(client, f"eval {qid}")
        made.append(conv)
        _ask(client, {**base, "query": first, "conversation_id": conv})
        out = _ask(client, {**base, "query": followup, "conversation_id": conv})
        runs["rewritten"][qid], searched[qid] = docs(out["results"]), out["search_query"]
        runs["as_asked"][qid] = docs(_ask(client, {**base, "query": followup})["results"])
        runs["claim"][qid] = docs(_ask(client, {**base, "query": queries[qid]})["results"])
    controls: dict[str, dict[str, list[str]]] = {"alone": {}, "in_conversation": {}}
    unchanged = 0
    for qid, unrelated in CONTROLS:
        if qid not in queries:
            continue
        conv = _conversation(client, f"eval control {qid}")
        made.append(conv)
        _ask(client, {**base, "query": unrelated, "conversation_id": conv})
        out = _ask(client, {**base, "query": queries[qid], "conversation_id": conv})
        unchanged += out["search_query"] == queries[qid]
        controls["in_conversation"][qid] = docs(out["results"])
        controls["alone"][qid] = docs(_ask(client, {**base, "query": queries[qid]})["results"])
    for conv in made:
        client.delete(f"/api/conversations/{conv}").raise_for_status()
    return {
        "runs": runs,
        "controls": controls,
        "controls_unchanged": unchanged,
        "rewritten_queries": searched,
        "seconds": round(time.perf_counter() - start, 1),
    }


def score(out: dict[str, Any], qrels: dict[str, dict[str, int]], evaluate: Any) -> dict[str, Any]:
    """nDCG@10 (and the harness's other measures) per run, over the cases and the controls."""
    cases = {q: qrels[q] for q in out["runs"]["claim"]}
    result: dict[str, Any] = {"cases": len(cases), "seconds": out["seconds"]}
    for name in RUNS:
        result[name] = evaluate(cases, out["runs"][name]) if cases else {}
    controls = {q: qrels[q] for q in out["controls"]["alone"]}
    result["controls"] = {
        "cases": len(controls),
        "unchanged": out["controls_unchanged"],
        **{name: evaluate(controls, run) for name, run in out["controls"].items() if controls},
    }
    result["changed_by_rewriting"] = sum(
        1
        for qid, first, followup in CASES
        if qid in out["rewritten_queries"] and out["rewritten_queries"][qid] != followup
    )
    return result


def print_followups(result: dict[str, Any]) -> None:
    print(f"\nfollow-ups ({result['cases']} two-turn cases, turn 2 judged; hybrid, no rerank)")
    print(f"{'run':<15}{'nDCG@10':>9}{'R@100':>8}{'MRR@10':>8}")
    for name in RUNS:
        r = result[name]
        if r:
            print(f"{name:<15}{r['ndcg@10']:>9.4f}{r['recall@100']:>8.4f}{r['mrr@10']:>8.4f}")
    c = result["controls"]
    alone, inside = c.get("alone", {}).get("ndcg@10"), c.get("in_conversation", {}).get("ndcg@10")
    print(
        f"rewritten: {result['changed_by_rewriting']}/{result['cases']} follow-ups; controls (self-contained, after an "
        f"unrelated turn): {c['unchanged']}/{c['cases']} searched as asked, nDCG@10 {inside} in the conversation vs "
        f"{alone} alone"
    )
