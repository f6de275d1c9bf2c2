package aggregate

import (
	"encoding/gob"
	"fmt"
	"io"
)

// state is what Save writes: the buckets that hold values, per series.
type state struct {
	Version int
	Print   string
	Series  []savedSeries
}

type savedSeries struct {
	Comp    int
	Name    string
	Buckets []savedBucket
}

type savedBucket struct {
	Start, Cnt    int64
	Sum, Min, Max float64
	Values        []float64
}

const stateVersion = 1

// Save writes the buckets that hold values (after a final Expire: those
// that have not ended) so that Load can take them up after a restart;
// print identifies the rule (a changed rule does not load them). It
// returns how many series it wrote.
func (a *Aggregate) Save(w io.Writer, print string) (int, error) {
	a.mu.Lock()
	st := state{Version: stateVersion, Print: print}
	for comp, m := range a.series {
		for _, s := range m {
			var ss savedSeries
			for i := range s.buckets {
				b := &s.buckets[(s.head+i)%len(s.buckets)]
				if b.cnt > 0 {
					ss.Buckets = append(ss.Buckets, savedBucket{b.start, b.cnt, b.sum, b.min, b.max, b.values})
				}
			}
			if len(ss.Buckets) > 0 {
				ss.Comp, ss.Name = comp, s.name
				st.Series = append(st.Series, ss)
			}
		}
	}
	a.mu.Unlock()
	return len(st.Series), gob.NewEncoder(w).Encode(&st)
}

// Load takes up what Save wrote for the same rule: each bucket goes into
// its series as if its values had arrived now (a bucket older than the
// series' first is late, and counted). It returns how many series it
// loaded.
func (a *Aggregate) Load(r io.Reader, print string) (int, error) {
	var st state
	if err := gob.NewDecoder(r).Decode(&st); err != nil {
		return 0, err
	}
	if st.Version != stateVersion || st.Print != print {
		return 0, fmt.Errorf("saved by another rule or version")
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ss := range st.Series {
		if ss.Comp < 0 || ss.Comp >= len(a.series) {
			continue
		}
		m := a.series[ss.Comp]
		s := m[ss.Name]
		if s == nil {
			if a.n >= a.cfg.MaxSeries {
				a.C.Refused.Add(1)
				continue
			}
			s = a.newSeries(ss.Comp, ss.Name, now)
			m[ss.Name] = s
			a.n++
			n++
		}
		for _, sb := range ss.Buckets {
			itime := sb.Start - s.buckets[s.head].start
			if itime < 0 || itime >= a.bucketcnt*a.cfg.Every || itime%a.cfg.Every != 0 {
				a.C.Late.Add(uint64(sb.Cnt))
				continue
			}
			b := &s.buckets[(int64(s.head)+itime/a.cfg.Every)%a.bucketcnt]
			if b.cnt == 0 {
				b.sum, b.min, b.max = sb.Sum, sb.Min, sb.Max
			} else {
				b.sum += sb.Sum
				b.min, b.max = min(b.min, sb.Min), max(b.max, sb.Max)
			}
			b.cnt += sb.Cnt
			b.values = append(b.values, sb.Values...)
			a.values += int64(len(sb.Values))
		}
	}
	return n, nil
}
