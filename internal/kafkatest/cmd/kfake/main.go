// Command kfake runs franz-go's in-process Kafka cluster as a process, for
// the bench (bench/run.sh w11) and for trying the Kafka plugins by hand. It
// keeps everything in memory.
//
//	go run ./internal/kafkatest/cmd/kfake -brokers 3 -partitions 12 -topics metrics -port 19092
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	brokers := flag.Int("brokers", 3, "brokers")
	partitions := flag.Int("partitions", 12, "partitions of each topic")
	topics := flag.String("topics", "metrics", "topics to create, comma-separated")
	port := flag.Int("port", 0, "port of the first broker (the others follow); 0: any free ports")
	flag.Parse()
	opts := []kfake.Opt{kfake.NumBrokers(*brokers), kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...)}
	if *port > 0 {
		ports := make([]int, *brokers)
		for i := range ports {
			ports[i] = *port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	c.Close()
}
