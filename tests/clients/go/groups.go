// Consumer groups with franz-go (classic protocol, franz-go's default cooperative-sticky balancer):
// two members of one group get disjoint assignments covering every partition and consume everything,
// committing after processing (CommitRecords; BlockRebalanceOnPoll so that no commit crosses a
// rebalance); kadm FetchOffsets and DescribeGroups agree with what the members did and hold. Then one
// member leaves (LeaveGroup) while records keep coming: the other takes its partitions and continues
// exactly at the committed offsets: nothing lost, nothing read twice.
package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const groupPartitions = 6

type consumed struct {
	partition int32
	offset    int64
	value     string
	at        time.Time
}

// groupMember is one franz-go group consumer polling in its own goroutine.
type groupMember struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	assigned  map[int32]bool
	lost      [][]int32
	records   []consumed
	committed map[int32]int64 // partition → next offset, from successful commits
	err       error
}

func startMember(bootstrap, group, topic, name string) (*groupMember, error) {
	m := &groupMember{name: name, done: make(chan struct{}), assigned: map[int32]bool{}, committed: map[int32]int64{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.RebalanceTimeout(20*time.Second),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range parts[topic] {
				m.assigned[p] = true
			}
		}),
		// Every processed record was committed before AllowRebalance: nothing is pending on a revoke.
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range parts[topic] {
				delete(m.assigned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.lost = append(m.lost, parts[topic])
			for _, p := range parts[topic] {
				delete(m.assigned, p)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("group member %s: %w", name, err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.poll(ctx)
	return m, nil
}

func (m *groupMember) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
	}
}

// poll consumes until ctx ends: process (record) a batch, commit it synchronously, allow rebalancing.
func (m *groupMember) poll(ctx context.Context) {
	defer close(m.done)
	for {
		fetches := m.cl.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			m.cl.AllowRebalance()
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				m.fail(fmt.Errorf("%s: fetch %s/%d: %w", m.name, t, p, err))
			}
		})
		records := fetches.Records()
		if len(records) > 0 {
			now := time.Now()
			m.mu.Lock()
			for _, r := range records {
				m.records = append(m.records, consumed{r.Partition, r.Offset, string(r.Value), now})
			}
			m.mu.Unlock()
			commitCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := m.cl.CommitRecords(commitCtx, records...)
			cancel()
			if err != nil {
				m.fail(fmt.Errorf("%s: CommitRecords: %w", m.name, err))
			} else {
				m.mu.Lock()
				for _, r := range records {
					if r.Offset+1 > m.committed[r.Partition] {
						m.committed[r.Partition] = r.Offset + 1
					}
				}
				m.mu.Unlock()
			}
		}
		m.cl.AllowRebalance()
	}
}

// stopPolling ends the poll loop; the member stays in the group (its heartbeats go on).
func (m *groupMember) stopPolling() {
	m.cancel()
	<-m.done
}

// leave stops polling, leaves the group (LeaveGroup) and closes the client.
func (m *groupMember) leave(ctx context.Context) error {
	m.stopPolling()
	err := m.cl.LeaveGroupContext(ctx)
	m.cl.Close()
	if err != nil {
		return fmt.Errorf("%s: LeaveGroup: %w", m.name, err)
	}
	return nil
}

func (m *groupMember) state() (assigned []int32, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.assigned {
		assigned = append(assigned, p)
	}
	sort.Slice(assigned, func(i, j int) bool { return assigned[i] < assigned[j] })
	return assigned, m.err
}

func (m *groupMember) snapshot() (records []consumed, committed map[int32]int64, lost [][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	committed = map[int32]int64{}
	for p, o := range m.committed {
		committed[p] = o
	}
	return append([]consumed(nil), m.records...), committed, append([][]int32(nil), m.lost...)
}

func (m *groupMember) String() string {
	assigned, err := m.state()
	records, committed, lost := m.snapshot()
	return fmt.Sprintf("%s: assigned %v, %d records, committed %v, lost %v, error %v", m.name, assigned, len(records), committed, lost, err)
}

// balanced: every member has a non-empty assignment; together disjoint and covering every partition.
func balanced(members ...*groupMember) (bool, error) {
	seen := map[int32]bool{}
	total := 0
	for _, m := range members {
		assigned, err := m.state()
		if err != nil {
			return false, err
		}
		if len(assigned) == 0 {
			return false, nil
		}
		for _, p := range assigned {
			seen[p] = true
		}
		total += len(assigned)
	}
	return total == groupPartitions && len(seen) == groupPartitions, nil
}

// waitFor polls cond every 50 ms until it holds, it fails, or timeout passes.
func waitFor(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error), state func() string) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w; %s", what, err, state())
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not within %v: %s; %s", timeout, what, state())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type acked struct {
	partition int32
	offset    int64
	value     string
}

// groupProducer produces to explicit partitions and keeps what was acknowledged.
type groupProducer struct {
	cl    *kgo.Client
	topic string
	mu    sync.Mutex
	acks  []acked
	err   error
	n     int
}

func (g *groupProducer) produce(ctx context.Context, tag string, count int) {
	var batch []*kgo.Record
	for i := 0; i < count; i++ {
		p := int32(g.n % groupPartitions)
		batch = append(batch, &kgo.Record{Topic: g.topic, Partition: p, Value: []byte(fmt.Sprintf("%s-p%d-%d", tag, p, g.n))})
		g.n++
	}
	results := g.cl.ProduceSync(ctx, batch...)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range results {
		if r.Err != nil {
			if g.err == nil {
				g.err = fmt.Errorf("produce %q: %w", r.Record.Value, r.Err)
			}
			continue
		}
		g.acks = append(g.acks, acked{r.Record.Partition, r.Record.Offset, string(r.Record.Value)})
	}
}

func (g *groupProducer) results() ([]acked, map[int32]int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ends := map[int32]int64{}
	for _, a := range g.acks {
		if a.offset+1 > ends[a.partition] {
			ends[a.partition] = a.offset + 1
		}
	}
	return append([]acked(nil), g.acks...), ends, g.err
}

func runGroups(ctx context.Context, bootstrap string, adm *kadm.Client) error {
	topic := fmt.Sprintf("franz-group-%d", time.Now().UnixNano())
	group := topic + "-g"
	host := "/" + strings.Split(bootstrap, ":")[0]
	created, err := adm.CreateTopics(ctx, groupPartitions, 1, nil, topic)
	if err == nil {
		err = created.Error()
	}
	if err != nil {
		return fmt.Errorf("CreateTopics %s: %w", topic, err)
	}
	if err := waitForLeaders(ctx, adm, topic, groupPartitions); err != nil {
		return err
	}
	producerClient, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return fmt.Errorf("group producer: %w", err)
	}
	defer producerClient.Close()
	producer := &groupProducer{cl: producerClient, topic: topic}
	producer.produce(ctx, "before", 20*groupPartitions)

	var members []*groupMember
	defer func() {
		for _, m := range members {
			m.stopPolling()
			m.cl.Close()
		}
	}()
	for _, name := range []string{"franz-m1", "franz-m2"} {
		m, err := startMember(bootstrap, group, topic, name)
		if err != nil {
			return err
		}
		members = append(members, m)
	}
	m1, m2 := members[0], members[1]
	both := []*groupMember{m1, m2} // members is what the deferred cleanup still has to close
	describeMembers := func() string { return m1.String() + "; " + m2.String() }
	if err := waitFor(ctx, "two members with disjoint assignments covering all partitions", 45*time.Second,
		func() (bool, error) { return balanced(m1, m2) }, describeMembers); err != nil {
		return err
	}
	consumedAll := func() (bool, error) {
		acks, _, err := producer.results()
		if err != nil {
			return false, err
		}
		seen := map[[2]int64]bool{}
		for _, m := range both {
			records, _, _ := m.snapshot()
			for _, r := range records {
				seen[[2]int64{int64(r.partition), r.offset}] = true
			}
		}
		for _, a := range acks {
			if !seen[[2]int64{int64(a.partition), a.offset}] {
				return false, nil
			}
		}
		return true, nil
	}
	committedAll := func() (bool, error) {
		_, ends, _ := producer.results()
		for p, end := range ends {
			best := int64(0)
			for _, m := range both {
				_, committed, _ := m.snapshot()
				if committed[p] > best {
					best = committed[p]
				}
			}
			if best != end {
				return false, nil
			}
		}
		return true, nil
	}
	if err := waitFor(ctx, "every record consumed and committed", 30*time.Second, func() (bool, error) {
		ok, err := consumedAll()
		if ok && err == nil {
			return committedAll()
		}
		return ok, err
	}, describeMembers); err != nil {
		return err
	}
	if err := checkOffsets(ctx, adm, group, topic, producer); err != nil {
		return err
	}
	if err := checkDescribed(ctx, adm, group, topic, host, "Stable", m1, m2); err != nil {
		return err
	}

	// m2 leaves while records keep coming; m1 takes over at the committed offsets.
	feedCtx, stopFeed := context.WithCancel(ctx)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for feedCtx.Err() == nil {
			producer.produce(ctx, "during", groupPartitions)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer func() { stopFeed(); <-fed }()
	if err := waitFor(ctx, m2.name+" consumes records produced meanwhile", 20*time.Second, func() (bool, error) {
		records, _, _ := m2.snapshot()
		return len(records) > 0 && strings.HasPrefix(records[len(records)-1].value, "during-"), nil
	}, describeMembers); err != nil {
		return err
	}
	handedOver, _ := m2.state()
	leftAt := time.Now()
	m2.stopPolling()
	// m2 processed and committed its last batch; m1 does not own these partitions yet.
	_, m2Committed, _ := m2.snapshot()
	_, m1Committed, _ := m1.snapshot()
	resumeAt := map[int32]int64{}
	for _, p := range handedOver {
		resumeAt[p] = max(m2Committed[p], m1Committed[p])
	}
	leaveCtx, cancelLeave := context.WithTimeout(ctx, 15*time.Second)
	err = m2.leave(leaveCtx)
	cancelLeave()
	members = members[:1]
	if err != nil {
		return err
	}
	if err := waitFor(ctx, m1.name+" takes over "+fmt.Sprint(handedOver), 15*time.Second, func() (bool, error) {
		assigned, err := m1.state()
		return len(assigned) == groupPartitions, err
	}, m1.String); err != nil {
		return err
	}
	tookOver := time.Since(leftAt)
	firstAfter := func() map[int32]consumed {
		first := map[int32]consumed{}
		records, _, _ := m1.snapshot()
		for _, r := range records {
			if _, seen := first[r.partition]; !seen && r.at.After(leftAt) {
				first[r.partition] = r
			}
		}
		return first
	}
	if err := waitFor(ctx, m1.name+" reads every partition it took over", 20*time.Second, func() (bool, error) {
		first := firstAfter()
		for _, p := range handedOver {
			if _, ok := first[p]; !ok {
				return false, nil
			}
		}
		return true, nil
	}, m1.String); err != nil {
		return err
	}
	stopFeed()
	<-fed
	first := firstAfter()
	for _, p := range handedOver {
		if first[p].offset != resumeAt[p] {
			return fmt.Errorf("%s took over partition %d and read from offset %d first, but the committed offset was %d",
				m1.name, p, first[p].offset, resumeAt[p])
		}
	}

	if err := waitFor(ctx, "every record consumed and committed after the leave", 30*time.Second, func() (bool, error) {
		ok, err := consumedAll()
		if ok && err == nil {
			return committedAll()
		}
		return ok, err
	}, func() string {
		_, ends, _ := producer.results()
		return fmt.Sprintf("end offsets %v; %s", ends, m1)
	}); err != nil {
		return err
	}
	// Exactly once each, with the value produced; graceful leaves lose nothing.
	acks, _, _ := producer.results()
	want := map[[2]int64]string{}
	for _, a := range acks {
		want[[2]int64{int64(a.partition), a.offset}] = a.value
	}
	reads := map[[2]int64]string{}
	for _, m := range both {
		records, _, lost := m.snapshot()
		if len(lost) > 0 {
			return fmt.Errorf("%s lost partitions %v (OnPartitionsLost) without any failure", m.name, lost)
		}
		for _, r := range records {
			key := [2]int64{int64(r.partition), r.offset}
			if previous, twice := reads[key]; twice {
				return fmt.Errorf("partition %d offset %d read twice (%s, then by %s)", r.partition, r.offset, previous, m.name)
			}
			reads[key] = m.name
			if want[key] != r.value {
				return fmt.Errorf("%s read %q at partition %d offset %d, produced %q", m.name, r.value, r.partition, r.offset, want[key])
			}
		}
	}
	if len(reads) != len(want) {
		return fmt.Errorf("read %d distinct records, produced %d", len(reads), len(want))
	}
	if err := checkOffsets(ctx, adm, group, topic, producer); err != nil {
		return err
	}
	if err := checkDescribed(ctx, adm, group, topic, host, "Stable", m1); err != nil {
		return err
	}
	leaveCtx, cancelLeave = context.WithTimeout(ctx, 15*time.Second)
	err = m1.leave(leaveCtx)
	cancelLeave()
	members = nil
	if err != nil {
		return err
	}
	if err := checkDescribed(ctx, adm, group, topic, host, "Empty"); err != nil {
		return err
	}
	if err := checkOffsets(ctx, adm, group, topic, producer); err != nil {
		return err
	}
	fmt.Printf("franz-go: groups: 2 members over %d partitions; %s left (LeaveGroup), %s took over %v in %v at the committed offsets %v; %d records, each read once\n",
		groupPartitions, m2.name, m1.name, handedOver, tookOver.Round(time.Millisecond), resumeAt, len(want))
	return nil
}

// checkOffsets: kadm FetchOffsets gives the end offset of every partition.
func checkOffsets(ctx context.Context, adm *kadm.Client, group, topic string, producer *groupProducer) error {
	_, ends, _ := producer.results()
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("FetchOffsets %s: %w", group, err)
	}
	if err := offsets.Error(); err != nil {
		return fmt.Errorf("FetchOffsets %s: %w", group, err)
	}
	for p := int32(0); p < groupPartitions; p++ {
		o, ok := offsets.Lookup(topic, p)
		if !ok || o.At != ends[p] {
			return fmt.Errorf("FetchOffsets %s %s/%d = %+v (found %v), want the end offset %d", group, topic, p, o, ok, ends[p])
		}
	}
	if len(offsets[topic]) != groupPartitions || len(offsets) != 1 {
		return fmt.Errorf("FetchOffsets %s: %d topics, %d partitions of %s; want only the %d of %s", group, len(offsets), len(offsets[topic]), topic, groupPartitions, topic)
	}
	return nil
}

// checkDescribed: kadm DescribeGroups has the state, and exactly these members with their own view
// of their member ids and assignments.
func checkDescribed(ctx context.Context, adm *kadm.Client, group, topic, host, state string, members ...*groupMember) error {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("DescribeGroups %s: %w", group, err)
	}
	d, ok := described[group]
	if !ok || d.Err != nil {
		return fmt.Errorf("DescribeGroups %s: %+v", group, d)
	}
	if d.State != state || d.ProtocolType != "consumer" || len(d.Members) != len(members) {
		return fmt.Errorf("DescribeGroups %s: state %q, protocol type %q, %d members; want %s, consumer, %d", group, d.State, d.ProtocolType, len(d.Members), state, len(members))
	}
	if len(members) > 0 && d.Protocol != "cooperative-sticky" {
		return fmt.Errorf("DescribeGroups %s: protocol %q, want franz-go's default cooperative-sticky", group, d.Protocol)
	}
	byID := map[string]*groupMember{}
	for _, m := range members {
		id, _ := m.cl.GroupMetadata()
		byID[id] = m
	}
	for _, dm := range d.Members {
		m := byID[dm.MemberID]
		if m == nil {
			return fmt.Errorf("DescribeGroups %s: member %s is none of ours (%v)", group, dm.MemberID, byID)
		}
		if dm.ClientID != m.name || dm.ClientHost != host {
			return fmt.Errorf("DescribeGroups %s: member %s has client id %q host %q, want %q %q", group, dm.MemberID, dm.ClientID, dm.ClientHost, m.name, host)
		}
		assignment, ok := dm.Assigned.AsConsumer()
		if !ok {
			return fmt.Errorf("DescribeGroups %s: member %s assignment does not decode", group, dm.MemberID)
		}
		var got []int32
		for _, t := range assignment.Topics {
			if t.Topic != topic {
				return fmt.Errorf("DescribeGroups %s: member %s assigned topic %s", group, dm.MemberID, t.Topic)
			}
			got = append(got, t.Partitions...)
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		have, _ := m.state()
		if fmt.Sprint(got) != fmt.Sprint(have) {
			return fmt.Errorf("DescribeGroups %s: member %s (%s) assigned %v, the member has %v", group, dm.MemberID, m.name, got, have)
		}
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("ListGroups: %w", err)
	}
	if l, ok := listed[group]; !ok || l.State != state || l.ProtocolType != "consumer" {
		return fmt.Errorf("ListGroups: %s is %+v (listed %v), want %s", group, l, ok, state)
	}
	return nil
}
