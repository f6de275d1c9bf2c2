package crelay

import "net/netip"

// Config is a carbon-c-relay configuration as carbon-c-relay reads it: the
// statements of the file and of the files it includes, in order, checked as
// carbon-c-relay checks them.
type Config struct {
	// File is the file read first.
	File string
	// Listeners are the listen statements' receptors in order; when the
	// configuration has none, carbon-c-relay's defaults (Default is set).
	Listeners []*Receptor
	// Clusters in definition order.
	Clusters []*Cluster
	// Rules are the match, rewrite and aggregate statements in order.
	Rules []*Rule
	// Stats is what the statistics statements set.
	Stats Stats
	// Unsupported lists the constructs carbon-c-relay accepts that the
	// router cannot express (yet), in file order.
	Unsupported []*Error
}

// Pos is where a construct is: the file as carbon-c-relay names it (the
// path as given or as a glob found it) and the line.
type Pos struct {
	File string
	Line int
}

// Receptor is one address of a listen statement.
type Receptor struct {
	Pos
	Proto string // "tcp", "udp" or "unix"
	// Host is the interface ("" = any), Port the port; Path the unix
	// socket.
	Host    string
	Port    int
	Path    string
	Default bool // one of carbon-c-relay's default listeners
	// Transport (plain, gzip, lz4, snappy) and SSL with its certificate
	// PEM, of the listen statement.
	Transport string
	SSL       bool
	PEM       string
	addrs     []netip.Addr // Options.Lookup's addresses of Host
}

// ClusterType is a cluster's kind.
type ClusterType uint8

// Cluster kinds.
const (
	Forward ClusterType = iota
	AnyOf
	Failover
	CarbonCh
	Fnv1aCh
	JumpCh
	FileLog
	FileLogIP
)

var clusterTypeNames = [...]string{"forward", "any_of", "failover", "carbon_ch", "fnv1a_ch", "jump_fnv1a_ch", "file", "file ip"}

func (t ClusterType) String() string { return clusterTypeNames[t] }

// Hashing reports whether t is a consistent hash.
func (t ClusterType) Hashing() bool { return t == CarbonCh || t == Fnv1aCh || t == JumpCh }

// Cluster is a cluster statement.
type Cluster struct {
	Pos
	Name        string
	Type        ClusterType
	Replication int  // hash clusters
	Dynamic     bool // hash clusters
	UseAll      bool // forward, any_of, failover
	Members     []*Member
}

// Member is a server of a cluster, or a file of a file cluster.
type Member struct {
	Pos
	// Host and Port (Host without brackets); Path for files.
	Host     string
	Port     int
	Path     string
	Instance string // "" = none
	HasInst  bool
	Proto    string // "tcp" or "udp"
	// Syslog: type syslog; Transport: plain, gzip, lz4, snappy; SSL: ssl.
	Syslog    bool
	Transport string
	SSL       bool
	srv       *server
	noHost    bool // ":port": carbon-c-relay crashes on it
	// expandedFrom is the name useall expanded this member from.
	expandedFrom string
}

// RuleKind is a rule's statement.
type RuleKind uint8

// Rule kinds.
const (
	Match RuleKind = iota
	Rewrite
	Aggregate
)

// Rule is a match, rewrite or aggregate statement.
type Rule struct {
	Pos
	Kind RuleKind
	// Exprs are the expressions; "*" matches everything (written * or
	// "*").
	Exprs []string
	// match: the validate clause.
	Validate string
	ElseLog  bool
	// match: route using.
	RouteUsing string
	// match, aggregate: send to. Blackhole is set when the list is the
	// keyword blackhole or names the cluster "blackhole"; SendTo holds the
	// other clusters.
	HasSend   bool
	SendTo    []string
	Blackhole bool
	// BlackholeFirst: the first destination is the blackhole, which makes
	// carbon-c-relay stop.
	BlackholeFirst bool
	// Stop is the stop keyword as written; Stops what carbon-c-relay does.
	Stop, Stops bool
	// rewrite: the replacement.
	Into string
	// Dests are the destinations as written ("blackhole" for the keyword).
	Dests []string
	// aggregate: every, expire after, timestamp at (start, middle, end),
	// the computations.
	Every, Expire int
	Timestamp     string
	Computes      []Compute
}

// Compute is one computation of an aggregate.
type Compute struct {
	Type   string // sum, count, max, min, average, median, percentile, variance, stddev
	Pct    int
	Metric string
}

// Stats is what the statistics statements set.
type Stats struct {
	// Interval in seconds (60 unless set); IntervalPos where it was set.
	Interval    int
	IntervalPos *Pos
	// Prefix as written (carbon-c-relay's default "carbon.relays.\.1"
	// unless set), PrefixPos where.
	Prefix    string
	PrefixPos *Pos
	// Reset: "reset counters after interval" in the last statistics
	// statement.
	Reset    bool
	ResetPos *Pos
	// SendTo: the clusters of "statistics send to" or "send statistics
	// to"; Blackhole when they include the blackhole.
	HasSend   bool
	SendTo    []string
	Blackhole bool
	Dests     []string
	SendPos   *Pos
	StopPos   *Pos
}
