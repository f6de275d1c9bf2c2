package agent

import (
	"context"

	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/plugins/metric"
)

// keyedNode is a distributor fed by a rule with route_using: each metric
// is placed by its key (the rule's rewrite of its name), not by its name,
// and queued unchanged.
type keyedNode struct {
	*distNode
	k *rules.Keyer
}

// keyWrap gives n the route_using k when n distributes (directly or behind
// namepass / namedrop); other outputs do not place metrics by name.
func keyWrap(n node, k *rules.Keyer) node {
	switch v := n.(type) {
	case *distNode:
		return &keyedNode{v, k}
	case *selNode:
		if d, ok := v.node.(*distNode); ok {
			c := *v
			c.node = &keyedNode{d, k}
			return &c
		}
	}
	return n
}

func (n *keyedNode) Enqueue(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	keys := make(metric.Batch, len(b))
	arena := make([]byte, 0, 32*len(b))
	for i := range b {
		keyMetric(&keys[i], &arena, n.k, b[i].Path())
	}
	return n.enqueue(ctx, b, keys)
}

// keyMetric makes *dst a Graphite metric named by the key of name,
// rendered at the end of *arena.
func keyMetric(dst *metric.Metric, arena *[]byte, k *rules.Keyer, name []byte) {
	start := len(*arena)
	*arena = k.Key(*arena, name)
	end := len(*arena)
	*arena = append(*arena, " 0 0"...)
	line := (*arena)[start:len(*arena):len(*arena)]
	kl := end - start
	metric.SetGraphite(dst, line, 0, kl, kl, kl+1, kl+2, kl+3, kl+4, 0)
}
