"""What carbon's own aggregation rules make of metric names.

usage: /usr/bin/python3 carbon_names.py RULES_FILE < NAMES
       /usr/bin/python3 carbon_names.py --lines < RULE_LINES

Reads RULES_FILE with carbon's RuleManager (carbon/aggregator/rules.py of
Debian's graphite-carbon), as carbon-aggregator does, and prints, for each
rule in file order, "rule<TAB>METHOD<TAB>FREQUENCY", then for every name
read (one per line) and every rule that matches it "I<TAB>NAME<TAB>OUTPUT":
I counts the rules from 0, OUTPUT is the name the rule aggregates NAME
into, or "!" and the exception's name when carbon fails on it. When carbon refuses the file it prints "refused<TAB>MESSAGE" and
exits with status 3.

With --lines it reads rule lines and prints, for each, "ok" when carbon's
RuleManager.parse_definition accepts it, else "refused<TAB>MESSAGE".
"""

import sys

from carbon.aggregator.rules import RuleManager


def lines():
    for line in sys.stdin:
        try:
            RuleManager.parse_definition(line.strip())
            print("ok")
        except Exception as e:
            print("refused\t%s: %s" % (type(e).__name__, e))


def main():
    if sys.argv[1] == "--lines":
        lines()
        return
    RuleManager.rules_file = sys.argv[1]
    try:
        RuleManager.read_rules()
    except Exception as e:  # carbon-aggregator stops here too
        print("refused\t%s: %s" % (type(e).__name__, e))
        sys.exit(3)
    for rule in RuleManager.rules:
        print("rule\t%s\t%d" % (rule.method, rule.frequency))
    for line in sys.stdin:
        name = line.rstrip("\n")
        for i, rule in enumerate(RuleManager.rules):
            try:
                out = rule.get_aggregate_metric(name)
            except Exception as e:
                out = "!" + type(e).__name__
            if out is not None:
                print("%d\t%s\t%s" % (i, name, out))


main()
