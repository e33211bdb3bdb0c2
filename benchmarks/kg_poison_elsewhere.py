"""Stand-alone graph poisoner: false facts injected without poisonlab, for its detector to find.

Reads the UMLS training facts that PyKEEN ships (its ``datasets/umls/train.txt``,
found through the installed package's location; PyKEEN itself is not imported, and
neither is poisonlab) and appends ``--n`` false facts, each a random head, relation
and tail that the graph does not hold, drawn with ``--seed``. Two kinds:

- ``random``: uniform over entities and relations (the noise of an automatic extractor);
- ``typed``: the head is drawn among the relation's own heads and the tail among its
  own tails, so each false fact respects the relation's domain and range (the harder
  case: an adversary who knows the schema).

Writes ``OUT.tsv`` (the poisoned training facts, the injected ones last) and
``OUT.mask.tsv`` (one 0/1 per line of OUT.tsv). ``bench_kg.py --elsewhere`` runs it
and scans the result with ``kg_plausibility``.

    python benchmarks/kg_poison_elsewhere.py --n 50 --kind typed --out /tmp/umls-typed
"""

from __future__ import annotations

import argparse
import importlib.util
import random
from pathlib import Path


def umls_train() -> Path:
    spec = importlib.util.find_spec("pykeen")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("PyKEEN is not installed: pip install pykeen")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "umls" / "train.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50, help="false facts to inject")
    parser.add_argument("--kind", choices=("random", "typed"), default="typed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output path without suffix")
    args = parser.parse_args()
    facts = [
        tuple(line.split("\t")) for line in umls_train().read_text(encoding="utf-8").splitlines() if line
    ]
    known = set(facts)
    entities = sorted({e for h, _, t in facts for e in (h, t)})
    relations = sorted({r for _, r, _ in facts})
    heads = {r: sorted({h for h, q, _ in facts if q == r}) for r in relations}
    tails = {r: sorted({t for _, q, t in facts if q == r}) for r in relations}
    rng = random.Random(args.seed)
    injected: list[tuple[str, str, str]] = []
    while len(injected) < args.n:
        relation = rng.choice(relations)
        if args.kind == "typed":
            head, tail = rng.choice(heads[relation]), rng.choice(tails[relation])
        else:
            head, tail = rng.choice(entities), rng.choice(entities)
        fact = (head, relation, tail)
        if head != tail and fact not in known:
            known.add(fact)
            injected.append(fact)
    rows = facts + injected
    Path(f"{args.out}.tsv").write_text("".join("\t".join(f) + "\n" for f in rows), encoding="utf-8")
    mask = ["0"] * len(facts) + ["1"] * len(injected)
    Path(f"{args.out}.mask.tsv").write_text("\n".join(mask) + "\n", encoding="utf-8")
    print(f"{len(injected)} {args.kind} false facts appended to {len(facts)} → {args.out}.tsv")


if __name__ == "__main__":
    main()
