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

// radix is a trie compiled for walking: each node carries the bytes of the
// chain of single-child, route-less nodes below it, compared at once.
type radix struct {
	nodes []rnode
}

type rnode struct {
	label  []byte  // bytes to match before this node's routes
	routes []int32 // routes filed under the path up to here
	keys   []byte  // first byte of each child's label, sorted
	next   []int32
}

// compile builds the radix form of t.
func (t *trie) compile() *radix {
	r := &radix{}
	var build func(n int32, label []byte) int32
	build = func(n int32, label []byte) int32 {
		// absorb single-child, route-less nodes into the label
		for len(t.nodes[n].routes) == 0 && len(t.nodes[n].keys) == 1 {
			label = append(label, t.nodes[n].keys[0])
			n = t.nodes[n].next[0]
		}
		id := int32(len(r.nodes))
		r.nodes = append(r.nodes, rnode{label: label, routes: t.nodes[n].routes})
		nd := t.nodes[n]
		keys := make([]byte, len(nd.keys))
		next := make([]int32, len(nd.keys))
		for i, k := range nd.keys {
			keys[i] = k
			next[i] = build(nd.next[i], []byte{k})
		}
		r.nodes[id].keys, r.nodes[id].next = keys, next
		return id
	}
	build(0, nil)
	return r
}

// walk appends the routes filed under every prefix (rev: suffix) of name
// whose index is above after.
func (r *radix) walk(name []byte, rev bool, after int32, dst []int32) []int32 {
	n, i := int32(0), 0
	for {
		nd := &r.nodes[n]
		// match the label
		for _, c := range nd.label {
			if i == len(name) {
				return dst
			}
			d := name[i]
			if rev {
				d = name[len(name)-1-i]
			}
			if c != d {
				return dst
			}
			i++
		}
		for _, rt := range nd.routes {
			if rt > after {
				dst = append(dst, rt)
			}
		}
		if i == len(name) || len(nd.keys) == 0 {
			return dst
		}
		c := name[i]
		if rev {
			c = name[len(name)-1-i]
		}
		k := -1
		if len(nd.keys) <= 8 {
			for j, key := range nd.keys {
				if key == c {
					k = j
					break
				}
			}
		} else if j, ok := slices.BinarySearch(nd.keys, c); ok {
			k = j
		}
		if k < 0 {
			return dst
		}
		n = nd.next[k]
	}
}
