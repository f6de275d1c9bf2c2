package rules

import "slices"

// trie files routes under a literal every name they match starts (or, for
// the suffix trie, ends) with. Walking a name through it yields the routes
// worth testing, so a chain of many prefix and suffix rules costs a walk of
// the name, not a test per rule.
type trie struct {
	nodes []tnode
}

type tnode struct {
	keys   []byte  // edge bytes, sorted
	next   []int32 // child node per key
	routes []int32 // routes whose literal ends here
}

func newTrie() *trie { return &trie{nodes: make([]tnode, 1)} }

func (t *trie) child(n int32, c byte) int32 {
	nd := &t.nodes[n]
	keys := nd.keys
	if len(keys) <= 8 {
		for i, k := range keys {
			if k == c {
				return nd.next[i]
			}
		}
		return -1
	}
	i, ok := slices.BinarySearch(keys, c)
	if !ok {
		return -1
	}
	return nd.next[i]
}

// add files route under lit, read backwards when rev.
func (t *trie) add(lit []byte, rev bool, route int32) {
	n := int32(0)
	for i := range lit {
		c := lit[i]
		if rev {
			c = lit[len(lit)-1-i]
		}
		nx := t.child(n, c)
		if nx < 0 {
			nx = int32(len(t.nodes))
			t.nodes = append(t.nodes, tnode{})
			nd := &t.nodes[n]
			at, _ := slices.BinarySearch(nd.keys, c)
			nd.keys = slices.Insert(nd.keys, at, c)
			nd.next = slices.Insert(nd.next, at, nx)
		}
		n = nx
	}
	t.nodes[n].routes = append(t.nodes[n].routes, route)
}

// walk appends the routes filed under every prefix (rev: suffix) of name
// whose index is above after.
func (t *trie) walk(name []byte, rev bool, after int32, dst []int32) []int32 {
	n := int32(0)
	for i := 0; ; i++ {
		for _, r := range t.nodes[n].routes {
			if r > after {
				dst = append(dst, r)
			}
		}
		if i == len(name) {
			return dst
		}
		c := name[i]
		if rev {
			c = name[len(name)-1-i]
		}
		if n = t.child(n, c); n < 0 {
			return dst
		}
	}
}

func (t *trie) empty() bool { return len(t.nodes) == 1 && len(t.nodes[0].routes) == 0 }
