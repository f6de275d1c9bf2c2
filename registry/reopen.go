package registry

// Reopener is implemented by outputs that write to files: Reopen closes
// every file and opens it again by its path, so that after logrotate moved a
// file away new lines go to a new file at the configured path. The agent
// calls it on SIGHUP, from its own goroutine: Reopen is safe to call
// concurrently with Write, and a batch goes whole to the old file or whole to
// the new one. If a file cannot be opened again the output keeps writing to
// the one it has and Reopen returns the error.
type Reopener interface {
	Reopen() error
}

// DestinationLister is implemented by outputs that write to several
// destinations at once (outputs.file with several files): Destinations
// returns every one, in configuration order, where Addresser's Destination
// can name only one.
type DestinationLister interface {
	Destinations() []string
}
