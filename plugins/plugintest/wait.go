package plugintest

import "time"

// GaugeValue returns the current value of a gauge, and whether it was
// registered.
func (m *Metrics) GaugeValue(name string) (float64, bool) {
	m.mu.Lock()
	f, ok := m.gauges[name]
	m.mu.Unlock()
	if !ok {
		return 0, false
	}
	return f(), true
}

// WaitCounter waits until the counter reaches at least want, or timeout. It
// returns the last value read.
func (m *Metrics) WaitCounter(name string, want uint64, timeout time.Duration) uint64 {
	deadline := time.Now().Add(timeout)
	for {
		v := m.Get(name)
		if v >= want || !time.Now().Before(deadline) {
			return v
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitGauge waits until the gauge equals want, or timeout. It returns the
// last value read.
func (m *Metrics) WaitGauge(name string, want float64, timeout time.Duration) float64 {
	deadline := time.Now().Add(timeout)
	for {
		v, _ := m.GaugeValue(name)
		if v == want || !time.Now().Before(deadline) {
			return v
		}
		time.Sleep(5 * time.Millisecond)
	}
}
