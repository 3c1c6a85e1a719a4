package dev.spate.clients;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * The parent's handle on one {@link GroupMember} child JVM: starts it, reads its event lines into
 * its current assignment, the records it consumed and the offsets it committed, and closes or kills
 * it. Every started member is registered; {@link #killAll} (also run by a shutdown hook) destroys the
 * ones still running, so a failing check leaves no child behind.
 */
final class MemberProcess implements AutoCloseable {
    /** A record as a member printed it after poll(). */
    record Consumed(String member, int partition, long offset, String value, long atMillis) {}

    /** A rebalance-listener callback: ASSIGNED, REVOKED or LOST. */
    record Event(String kind, long atMillis, int generation, Set<Integer> partitions) {}

    private static final List<MemberProcess> ALL = new CopyOnWriteArrayList<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(MemberProcess::killAll));
    }

    final String name;
    private final Process process;
    private final Thread stdoutReader;
    private final Thread stderrReader;

    // Guarded by this.
    private final TreeSet<Integer> assignment = new TreeSet<>();
    private final List<Event> events = new ArrayList<>();
    private final List<Consumed> consumed = new ArrayList<>();
    private final Map<Integer, Long> committed = new HashMap<>();
    private final List<String> problems = new ArrayList<>();
    private int commitsDeferred;
    private final Deque<String> stderrTail = new ArrayDeque<>();
    private int generation = -1;
    private String memberId = "";
    private long subscribedAt = -1;
    private boolean closed;

    private MemberProcess(String name, Process process) {
        this.name = name;
        this.process = process;
        this.stdoutReader = new Thread(() -> read(process.getInputStream(), this::onLine), name + "-stdout");
        this.stderrReader = new Thread(() -> read(process.getErrorStream(), this::onStderr), name + "-stderr");
        stdoutReader.setDaemon(true);
        stderrReader.setDaemon(true);
        stdoutReader.start();
        stderrReader.start();
    }

    /** Starts a member JVM (same java binary and classpath as this one). */
    static MemberProcess start(String name, String bootstrap, String group, String topic, String assignor,
                               int sessionTimeoutMs) throws IOException {
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        List<String> command = List.of(java,
                // Small, short-lived JVMs on a shared machine: C1 only, serial GC, a small heap.
                "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx128m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", System.getProperty("java.class.path"),
                GroupMember.class.getName(), bootstrap, group, topic, name, assignor, Integer.toString(sessionTimeoutMs));
        Process process = new ProcessBuilder(command).start();
        MemberProcess member = new MemberProcess(name, process);
        ALL.add(member);
        return member;
    }

    static void killAll() {
        for (MemberProcess member : ALL) {
            member.process.destroyForcibly();
        }
    }

    long pid() {
        return process.pid();
    }

    boolean alive() {
        return process.isAlive();
    }

    synchronized Set<Integer> assignment() {
        return new TreeSet<>(assignment);
    }

    synchronized int generation() {
        return generation;
    }

    synchronized String memberId() {
        return memberId;
    }

    synchronized long subscribedAt() {
        return subscribedAt;
    }

    synchronized List<Event> events() {
        return new ArrayList<>(events);
    }

    synchronized List<Consumed> consumed() {
        return new ArrayList<>(consumed);
    }

    /** Partition → the offset of its last successful commit (the next offset to read). */
    synchronized Map<Integer, Long> committed() {
        return new HashMap<>(committed);
    }

    /** Commits the client refused with RebalanceInProgressException (kept pending, committed later). */
    synchronized int commitsDeferred() {
        return commitsDeferred;
    }

    synchronized List<String> problems() {
        return new ArrayList<>(problems);
    }

    /** Asks the member to close (commit, LeaveGroup) and waits for a clean exit. */
    void close(long timeoutMs) throws Exception {
        try {
            OutputStream stdin = process.getOutputStream();
            stdin.write("close\n".getBytes(StandardCharsets.UTF_8));
            stdin.flush();
        } catch (IOException e) {
            // Already gone: the exit status below says how.
        }
        boolean exited = process.waitFor(timeoutMs, TimeUnit.MILLISECONDS);
        SpateClientCheck.check(exited, name + " did not exit within " + timeoutMs + " ms of close; " + this);
        stdoutReader.join(5_000);
        SpateClientCheck.check(process.exitValue() == 0 && closedCleanly(),
                name + " exited with status " + process.exitValue() + " on close; " + this);
    }

    /** SIGKILL (Process.destroyForcibly on Linux); returns the exit status (137 = 128 + SIGKILL). */
    int kill() throws InterruptedException {
        process.destroyForcibly();
        SpateClientCheck.check(process.waitFor(10, TimeUnit.SECONDS), name + " survived destroyForcibly");
        // What it printed before it died is still in the pipe.
        stdoutReader.join(5_000);
        return process.exitValue();
    }

    @Override
    public void close() {
        process.destroyForcibly();
    }

    private synchronized boolean closedCleanly() {
        return closed;
    }

    private static void read(InputStream stream, java.util.function.Consumer<String> sink) {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                sink.accept(line);
            }
        } catch (IOException e) {
            // The process is gone.
        }
    }

    private synchronized void onStderr(String line) {
        // The child logs at WARN and above (slf4j-simple): worth seeing in the suite's output.
        System.err.println("[" + name + "] " + line);
        stderrTail.addLast(line);
        while (stderrTail.size() > 20) {
            stderrTail.removeFirst();
        }
    }

    private synchronized void onLine(String line) {
        String[] f = line.split(" ", 6);
        try {
            long at = Long.parseLong(f[1]);
            switch (f[0]) {
                case "SUBSCRIBED" -> subscribedAt = at;
                case "ASSIGNED" -> {
                    generation = Integer.parseInt(f[2]);
                    memberId = f[3];
                    Set<Integer> parts = parts(f[4]);
                    events.add(new Event("ASSIGNED", at, generation, parts));
                    assignment.addAll(parts);
                }
                case "REVOKED", "LOST" -> {
                    Set<Integer> parts = parts(f[3]);
                    events.add(new Event(f[0], at, Integer.parseInt(f[2]), parts));
                    assignment.removeAll(parts);
                }
                case "RECORD" -> consumed.add(new Consumed(name, Integer.parseInt(f[2]), Long.parseLong(f[3]), f[4], at));
                case "COMMITTED" -> {
                    for (String entry : f[2].split(",")) {
                        String[] kv = entry.split("=");
                        committed.merge(Integer.parseInt(kv[0]), Long.parseLong(kv[1]), Math::max);
                    }
                }
                // The client refuses to commit while it rejoins (cooperative rebalancing goes on consuming
                // meanwhile): the offsets stay pending and go with the next commit. Anything else is a problem.
                case "COMMITFAIL" -> {
                    if (f.length > 2 && f[2].startsWith("org.apache.kafka.common.errors.RebalanceInProgressException")) {
                        commitsDeferred++;
                    } else {
                        problems.add(line);
                    }
                }
                case "ERROR" -> problems.add(line);
                case "CLOSED" -> closed = true;
                default -> problems.add("unparsed: " + line);
            }
        } catch (RuntimeException e) {
            problems.add("unparsed (" + e + "): " + line);
        }
    }

    private static Set<Integer> parts(String text) {
        TreeSet<Integer> parts = new TreeSet<>();
        if (!text.equals("-")) {
            for (String p : text.split(",")) {
                parts.add(Integer.parseInt(p));
            }
        }
        return parts;
    }

    static String describe(Collection<MemberProcess> members) {
        StringBuilder text = new StringBuilder();
        for (MemberProcess member : members) {
            text.append("\n  ").append(member);
        }
        return text.toString();
    }

    @Override
    public synchronized String toString() {
        List<Event> last = events.subList(Math.max(0, events.size() - 6), events.size());
        return name + " (pid " + process.pid() + (process.isAlive() ? ", running" : ", exited") + ", generation "
                + generation + ", assignment " + assignment + ", " + consumed.size() + " records, committed "
                + committed + ", last events " + last + (problems.isEmpty() ? "" : ", problems " + problems)
                + (stderrTail.isEmpty() ? "" : ", stderr tail:\n    " + String.join("\n    ", stderrTail)) + ")";
    }
}
