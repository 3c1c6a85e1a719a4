// spate-franz: drives a Spate broker with franz-go, an unmodified third-party Kafka client.
//
// It creates a topic (kadm), produces records synchronously with the client's defaults (idempotent,
// acks=all) and once per compression codec, consumes them back by direct partition consumption (no
// group), and checks every key, value, header, timestamp and offset. Exit status 0 when everything
// matched, 1 with a message otherwise. Consumer groups: groups.go.
//
// Usage: spate-franz [-bootstrap 127.0.0.1:9092] [-records 2000]   (or SPATE_BOOTSTRAP)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const partitions = 3

type sent struct {
	key, value []byte
	headers    []kgo.RecordHeader
	timestamp  time.Time
	partition  int32
	offset     int64
}

func main() {
	bootstrap := flag.String("bootstrap", os.Getenv("SPATE_BOOTSTRAP"), "broker HOST:PORT (default $SPATE_BOOTSTRAP)")
	records := flag.Int("records", 2000, "records to produce (split over the compression codecs)")
	timeout := flag.Duration("timeout", 60*time.Second, "overall deadline")
	flag.Parse()
	if *bootstrap == "" {
		fail("no bootstrap address: pass -bootstrap HOST:PORT or set SPATE_BOOTSTRAP")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *bootstrap, *records); err != nil {
		fail(err.Error())
	}
	fmt.Printf("franz-go: OK (%d records over %d partitions, every codec, round-tripped exactly; consumer group handover)\n", *records, partitions)
}

func fail(message string) {
	fmt.Fprintf(os.Stderr, "franz-go: FAIL: %s\n", message)
	os.Exit(1)
}

func run(ctx context.Context, bootstrap string, total int) error {
	topic := fmt.Sprintf("franz-%d", time.Now().UnixNano())

	admin, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)

	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return fmt.Errorf("list brokers (Metadata): %w", err)
	}
	if len(brokers) != 1 || brokers[0].Host != strings.Split(bootstrap, ":")[0] {
		return fmt.Errorf("metadata lists brokers %+v, want exactly the one at %s", brokers, bootstrap)
	}

	created, err := adm.CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		return fmt.Errorf("CreateTopics: %w", err)
	}
	for _, result := range created.Sorted() {
		if result.Err != nil {
			return fmt.Errorf("CreateTopics %s: %w (%s)", result.Topic, result.Err, result.ErrMessage)
		}
		if result.NumPartitions != partitions {
			return fmt.Errorf("CreateTopics %s answered %d partitions, want %d", result.Topic, result.NumPartitions, partitions)
		}
	}
	if err := waitForLeaders(ctx, adm, topic, partitions); err != nil {
		return err
	}

	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	base := time.UnixMilli(1_700_000_000_000)
	var all []*sent
	idempotent := map[string]int64{}
	perCodec := total / len(codecs)
	for codecIndex, codec := range codecs {
		producer, err := kgo.NewClient(
			kgo.SeedBrokers(bootstrap),
			kgo.RequiredAcks(kgo.AllISRAcks()), // the default, stated: the idempotent producer needs it
			kgo.ProducerBatchCompression(codec.codec),
			kgo.ProducerLinger(5*time.Millisecond),
		)
		if err != nil {
			return fmt.Errorf("producer (%s): %w", codec.name, err)
		}
		var batch []*kgo.Record
		var expected []*sent
		// ProduceSync lists results in the order they completed, not the order given.
		sentOf := map[*kgo.Record]*sent{}
		for i := 0; i < perCodec; i++ {
			n := codecIndex*perCodec + i
			s := &sent{
				key:   []byte(fmt.Sprintf("key-%d", n%97)),
				value: []byte(fmt.Sprintf("value-%d-%s-%s", n, codec.name, strings.Repeat("x", n%50))),
				headers: []kgo.RecordHeader{
					{Key: "codec", Value: []byte(codec.name)},
					{Key: "dup", Value: []byte("first")},
					{Key: "dup", Value: []byte("second")},
				},
				timestamp: base.Add(time.Duration(n) * time.Millisecond),
			}
			record := &kgo.Record{Topic: topic, Key: s.key, Value: s.value, Headers: s.headers, Timestamp: s.timestamp}
			expected = append(expected, s)
			batch = append(batch, record)
			sentOf[record] = s
		}
		results := producer.ProduceSync(ctx, batch...)
		producerID, _, idErr := producer.ProducerID(ctx)
		producer.Close()
		if idErr != nil {
			return fmt.Errorf("producer (%s): producer id: %w", codec.name, idErr)
		}
		// franz-go is idempotent by default, but quietly produces without a producer id when the
		// broker does not offer InitProducerId; say which path ran.
		if producerID >= 0 {
			idempotent[codec.name] = producerID
		}
		if len(results) != len(batch) {
			return fmt.Errorf("produce (%s): %d results for %d records", codec.name, len(results), len(batch))
		}
		for _, result := range results {
			s := sentOf[result.Record]
			if result.Err != nil {
				return fmt.Errorf("produce (%s) record %q: %w", codec.name, s.value, result.Err)
			}
			s.partition = result.Record.Partition
			s.offset = result.Record.Offset
		}
		all = append(all, expected...)
	}

	// Same key, same partition: the client's partitioner, and the broker honouring the partition asked for.
	partitionOfKey := map[string]int32{}
	for _, s := range all {
		if p, seen := partitionOfKey[string(s.key)]; seen && p != s.partition {
			return fmt.Errorf("key %q went to partitions %d and %d", s.key, p, s.partition)
		}
		partitionOfKey[string(s.key)] = s.partition
	}

	// Each producer kept the order of its records within a partition (send order = offset order).
	lastOffset := map[int32]int64{}
	for i, s := range all {
		if i%perCodec == 0 {
			lastOffset = map[int32]int64{}
		}
		if previous, seen := lastOffset[s.partition]; seen && s.offset <= previous {
			return fmt.Errorf("record %q got offset %d in partition %d, after an earlier record of the same producer got %d",
				s.value, s.offset, s.partition, previous)
		}
		lastOffset[s.partition] = s.offset
	}

	// Offsets handed out are dense per partition, from 0.
	byPartition := map[int32][]*sent{}
	for _, s := range all {
		byPartition[s.partition] = append(byPartition[s.partition], s)
	}
	for p, list := range byPartition {
		sort.Slice(list, func(i, j int) bool { return list[i].offset < list[j].offset })
		for i, s := range list {
			if s.offset != int64(i) {
				return fmt.Errorf("partition %d: produce acknowledged offsets %v..., want 0,1,2,... (record %d has %d)",
					p, firstOffsets(list), i, s.offset)
			}
		}
	}

	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("ListOffsets (latest): %w", err)
	}
	for p := int32(0); p < partitions; p++ {
		end, ok := ends.Lookup(topic, p)
		if !ok || end.Err != nil {
			return fmt.Errorf("ListOffsets latest %s/%d: %v %v", topic, p, ok, end.Err)
		}
		if end.Offset != int64(len(byPartition[p])) {
			return fmt.Errorf("ListOffsets latest %s/%d = %d, want %d", topic, p, end.Offset, len(byPartition[p]))
		}
	}

	if err := consumeAndCheck(ctx, bootstrap, topic, all, byPartition); err != nil {
		return err
	}
	if err := runGroups(ctx, bootstrap, adm); err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	if len(idempotent) == len(codecs) {
		fmt.Printf("franz-go: idempotent producers (InitProducerId gave ids %v)\n", idempotent)
	} else {
		fmt.Printf("franz-go: NOTE: %d of %d producers ran without a producer id, not idempotent (franz-go falls back to that when the broker does not offer InitProducerId)\n",
			len(codecs)-len(idempotent), len(codecs))
	}
	return nil
}

func consumeAndCheck(ctx context.Context, bootstrap, topic string, all []*sent, byPartition map[int32][]*sent) error {
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()

	got := map[int32][]*kgo.Record{}
	count := 0
	for polls := 0; count < len(all); polls++ {
		if polls > 10_000 {
			return fmt.Errorf("gave up after %d polls with %d of %d records", polls, count, len(all))
		}
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("consumed %d of %d records before the deadline: %w", count, len(all), ctx.Err())
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			count++
		})
	}
	if count != len(all) {
		return fmt.Errorf("consumed %d records, produced %d", count, len(all))
	}
	for p, records := range got {
		want := byPartition[p]
		if len(records) != len(want) {
			return fmt.Errorf("partition %d: consumed %d records, produced %d", p, len(records), len(want))
		}
		for i, r := range records {
			w := want[i]
			if r.Offset != w.offset {
				return fmt.Errorf("partition %d record %d: offset %d, want %d", p, i, r.Offset, w.offset)
			}
			if string(r.Key) != string(w.key) || string(r.Value) != string(w.value) {
				return fmt.Errorf("partition %d offset %d: got key %q value %q, want %q %q", p, r.Offset, r.Key, r.Value, w.key, w.value)
			}
			if !r.Timestamp.Equal(w.timestamp) {
				return fmt.Errorf("partition %d offset %d: timestamp %d, want %d", p, r.Offset, r.Timestamp.UnixMilli(), w.timestamp.UnixMilli())
			}
			if r.Attrs.TimestampType() != 0 {
				return fmt.Errorf("partition %d offset %d: timestamp type %d, want 0 (CreateTime)", p, r.Offset, r.Attrs.TimestampType())
			}
			if len(r.Headers) != len(w.headers) {
				return fmt.Errorf("partition %d offset %d: headers %v, want %v", p, r.Offset, r.Headers, w.headers)
			}
			for h := range r.Headers {
				if r.Headers[h].Key != w.headers[h].Key || string(r.Headers[h].Value) != string(w.headers[h].Value) {
					return fmt.Errorf("partition %d offset %d: headers %v, want %v", p, r.Offset, r.Headers, w.headers)
				}
			}
		}
	}
	return nil
}

// waitForLeaders polls Metadata (bounded by ctx) until each of the count partitions of topic has a leader.
func waitForLeaders(ctx context.Context, adm *kadm.Client, topic string, count int) error {
	for attempt := 0; attempt < 200; attempt++ {
		details, err := adm.ListTopics(ctx, topic)
		if err == nil {
			d, ok := details[topic]
			if ok && d.Err == nil && len(d.Partitions) == count {
				ready := true
				for _, p := range d.Partitions {
					if p.Err != nil || p.Leader < 0 {
						ready = false
					}
				}
				if ready {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no leader for every partition: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("topic %s has no leader for every partition after 200 metadata polls", topic)
}

func firstOffsets(list []*sent) []int64 {
	var out []int64
	for i := 0; i < len(list) && i < 5; i++ {
		out = append(out, list[i].offset)
	}
	return out
}
