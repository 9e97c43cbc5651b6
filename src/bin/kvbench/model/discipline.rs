//! The threading patterns as queueing disciplines, and the event-driven
//! serving of a list of requests under one of them.
//!
//! What is modelled, as the server behaves, at zero overhead (no dispatch,
//! parsing, network or wake-up cost):
//!
//! - a connection is *ready* when it has arrived-but-unserved requests and
//!   no batch in service; ready connections wait in a FIFO, one per server
//!   ([`Discipline::Single`], [`Discipline::Partitioned`],
//!   [`Discipline::Hashed`]) or one shared by all servers
//!   ([`Discipline::Central`]);
//! - a free server takes the head connection and serves, one after another,
//!   up to `batch_limit` of the requests that had arrived when it took it,
//!   stopping early after the request that brings the batch's work to the
//!   slice, if there is one; the replies are written together, so every
//!   request of the batch completes when the batch ends;
//! - when a batch ends, a connection with requests left (or arrived
//!   meanwhile) rejoins the tail of its FIFO;
//! - at equal times, arrivals come before batch ends: a request that arrives
//!   as a batch ends is pending when the batch ends.
//!
//! Times here are whole nanoseconds, so the serving is exact.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::dealing;

/// Which threading pattern is modelled: how connections are spread over
/// servers (threads) and queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discipline {
    /// basic: one event loop serves every connection (M/G/1).
    Single,
    /// multi-reader: k event loops; connection c lives on loop c % k
    /// (connections dealt round-robin): k × M/G/1.
    Partitioned { servers: usize },
    /// reuseport: k event loops; each connection lives on a loop drawn at
    /// random ([`dealing::hashed`], as the kernel's hash of its addresses
    /// spreads them), so the loops' shares of the load are uneven.
    Hashed { servers: usize },
    /// worker-pool: one central FIFO of ready connections, k workers
    /// (M/G/k), a connection has one batch in flight.
    Central { servers: usize },
}

impl Discipline {
    /// How many servers (threads) serve requests; at least one.
    pub fn servers(&self) -> usize {
        match *self {
            Discipline::Single => 1,
            Discipline::Partitioned { servers }
            | Discipline::Hashed { servers }
            | Discipline::Central { servers } => servers.max(1),
        }
    }

    /// The FIFO that each of `connections` waits in; a hashed discipline
    /// deals them by `dealing` (a seed).
    fn queues(&self, connections: usize, dealing: u64) -> Vec<usize> {
        let k = self.servers();
        match *self {
            Discipline::Partitioned { .. } => (0..connections).map(|c| c % k).collect(),
            Discipline::Hashed { .. } => dealing::hashed(connections, k, dealing),
            Discipline::Single | Discipline::Central { .. } => vec![0; connections],
        }
    }

    /// The servers taking from each FIFO.
    fn servers_by_queue(&self) -> Vec<Vec<usize>> {
        match *self {
            Discipline::Single => vec![vec![0]],
            Discipline::Partitioned { .. } | Discipline::Hashed { .. } => {
                (0..self.servers()).map(|s| vec![s]).collect()
            }
            Discipline::Central { .. } => vec![(0..self.servers()).collect()],
        }
    }
}

/// One request offered to the servers. Times in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub arrival: u64,
    pub connection: usize,
    pub service: u64,
}

/// When a request's own service started, and when its reply was written
/// (the end of its batch). Nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Passage {
    pub start: u64,
    pub done: u64,
}

/// What serving a list of requests produced.
pub(super) struct Served {
    /// One per request, in the order of the requests.
    pub passages: Vec<Passage>,
    /// Total time the servers spent serving, nanoseconds.
    pub busy: u64,
}

/// How servers take work from a connection.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batching {
    /// The most requests of one connection served per turn (at least 1).
    pub limit: usize,
    /// A batch ends after the request that brings its work to this, in
    /// nanoseconds, if set.
    pub slice: Option<u64>,
}

/// Serves `requests` (sorted by arrival time) under `discipline`, its
/// connections dealt to FIFOs by `dealing` if it deals at random; every
/// request is followed to completion.
pub(super) fn serve(
    discipline: Discipline,
    batching: Batching,
    requests: &[Request],
    dealing: u64,
) -> Served {
    let mut run = Run::new(discipline, batching, requests, dealing);
    let mut arrived = 0;
    loop {
        let next_end = run.batch_ends.peek().map(|&Reverse((at, _))| at);
        let arrival_first = match (requests.get(arrived), next_end) {
            (Some(request), Some(end)) => request.arrival <= end,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if arrival_first {
            let request = requests[arrived];
            run.arrive(request.connection, request.arrival);
            arrived += 1;
        } else {
            let Reverse((at, server)) = run.batch_ends.pop().expect("peeked");
            run.end_batch(server, at);
        }
    }
    Served {
        passages: run.passages,
        busy: run.busy,
    }
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnectionState {
    /// Nothing pending, no batch in service.
    Idle,
    /// Ready, in its FIFO.
    Queued,
    /// A batch of its requests is in service.
    InService,
}

/// The batch a server is serving.
#[derive(Clone, Copy, Debug, Default)]
struct Batch {
    connection: usize,
    /// Its requests are `members[from..from + count]`.
    from: usize,
    count: usize,
}

/// The state of one serving run.
struct Run<'a> {
    batching: Batching,
    /// Per connection: the FIFO it waits in.
    queue_of: Vec<usize>,
    requests: &'a [Request],
    /// Request indices grouped by connection, each group in arrival order:
    /// connection c's are `members[group_start[c]..group_start[c + 1]]`.
    members: Vec<usize>,
    group_start: Vec<usize>,
    /// Per connection: the index into `members` of its first unserved request.
    next_unserved: Vec<usize>,
    states: Vec<ConnectionState>,
    /// Per FIFO: the ready connections, and the idle servers taking from it.
    ready: Vec<VecDeque<usize>>,
    idle_servers: Vec<Vec<usize>>,
    batches: Vec<Batch>,
    /// (end time, server) of every batch in service, earliest first.
    batch_ends: BinaryHeap<Reverse<(u64, usize)>>,
    passages: Vec<Passage>,
    busy: u64,
}

impl<'a> Run<'a> {
    fn new(
        discipline: Discipline,
        batching: Batching,
        requests: &'a [Request],
        dealing: u64,
    ) -> Self {
        debug_assert!(requests.windows(2).all(|w| w[0].arrival <= w[1].arrival));
        let connections = requests.iter().map(|r| r.connection + 1).max().unwrap_or(0);
        let mut group_start = vec![0; connections + 1];
        for r in requests {
            group_start[r.connection + 1] += 1;
        }
        for c in 0..connections {
            group_start[c + 1] += group_start[c];
        }
        let mut next_unserved = group_start[..connections].to_vec();
        let mut members = vec![0; requests.len()];
        for (index, r) in requests.iter().enumerate() {
            members[next_unserved[r.connection]] = index;
            next_unserved[r.connection] += 1;
        }
        next_unserved.copy_from_slice(&group_start[..connections]);
        let idle_servers: Vec<Vec<usize>> = discipline
            .servers_by_queue()
            .into_iter()
            // Popped from the back: the lowest-numbered idle server goes first.
            .map(|servers| servers.into_iter().rev().collect())
            .collect();
        Run {
            batching,
            queue_of: discipline.queues(connections, dealing),
            requests,
            members,
            group_start,
            next_unserved,
            states: vec![ConnectionState::Idle; connections],
            ready: vec![VecDeque::new(); idle_servers.len()],
            idle_servers,
            batches: vec![Batch::default(); discipline.servers()],
            batch_ends: BinaryHeap::new(),
            passages: vec![Passage::default(); requests.len()],
            busy: 0,
        }
    }

    /// A request of `connection` arrives at `now`.
    fn arrive(&mut self, connection: usize, now: u64) {
        if self.states[connection] == ConnectionState::Idle {
            self.make_ready(connection);
            self.dispatch(self.queue_of[connection], now);
        }
    }

    /// The batch on `server` ends at `now`: its replies are written.
    fn end_batch(&mut self, server: usize, now: u64) {
        let batch = self.batches[server];
        for &index in &self.members[batch.from..batch.from + batch.count] {
            self.passages[index].done = now;
        }
        let connection = batch.connection;
        if self.has_pending(connection, now) {
            self.make_ready(connection);
        } else {
            self.states[connection] = ConnectionState::Idle;
        }
        let queue = self.queue_of[connection];
        self.idle_servers[queue].push(server);
        self.dispatch(queue, now);
    }

    fn make_ready(&mut self, connection: usize) {
        self.states[connection] = ConnectionState::Queued;
        self.ready[self.queue_of[connection]].push_back(connection);
    }

    /// Whether `connection` has requests that arrived by `now` and are unserved.
    fn has_pending(&self, connection: usize, now: u64) -> bool {
        let next = self.next_unserved[connection];
        next < self.group_start[connection + 1] && self.requests[self.members[next]].arrival <= now
    }

    /// Idle servers of FIFO `queue` take its ready connections.
    fn dispatch(&mut self, queue: usize, now: u64) {
        while !self.idle_servers[queue].is_empty() {
            let Some(connection) = self.ready[queue].pop_front() else {
                return;
            };
            let server = self.idle_servers[queue].pop().expect("checked");
            self.start_batch(server, connection, now);
        }
    }

    /// `server` takes `connection` at `now` and serves a batch of its
    /// pending requests back to back.
    fn start_batch(&mut self, server: usize, connection: usize, now: u64) {
        let from = self.next_unserved[connection];
        let group_end = self.group_start[connection + 1];
        let mut work = 0;
        let mut count = 0;
        while count < self.batching.limit.max(1) && from + count < group_end {
            let index = self.members[from + count];
            let request = self.requests[index];
            if request.arrival > now {
                break;
            }
            self.passages[index].start = now + work;
            work += request.service;
            count += 1;
            if self.batching.slice.is_some_and(|slice| work >= slice) {
                break;
            }
        }
        debug_assert!(count > 0, "a ready connection has a pending request");
        self.next_unserved[connection] = from + count;
        self.states[connection] = ConnectionState::InService;
        self.batches[server] = Batch {
            connection,
            from,
            count,
        };
        self.busy += work;
        self.batch_ends.push(Reverse((now + work, server)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests of `service` ns each, at the given (arrival, connection).
    fn requests(service: u64, arrivals: &[(u64, usize)]) -> Vec<Request> {
        arrivals
            .iter()
            .map(|&(arrival, connection)| Request {
                arrival,
                connection,
                service,
            })
            .collect()
    }

    fn done_times(served: &Served) -> Vec<u64> {
        served.passages.iter().map(|p| p.done).collect()
    }

    fn start_times(served: &Served) -> Vec<u64> {
        served.passages.iter().map(|p| p.start).collect()
    }

    const UNBATCHED: Batching = Batching {
        limit: 20,
        slice: None,
    };

    #[test]
    fn a_batch_holds_what_had_arrived_and_replies_together() {
        // One connection, 10 ns per request. The request at 0 is served
        // alone (0..10); the ones at 2 and 5 had arrived by 10 and form the
        // next batch (10..30), both replied to at 30; the one at 25 arrived
        // during that batch and is served next (30..40); the one at 50 finds
        // the connection idle.
        let reqs = requests(10, &[(0, 0), (2, 0), (5, 0), (25, 0), (50, 0)]);
        let served = serve(Discipline::Single, UNBATCHED, &reqs, 0);
        assert_eq!(done_times(&served), [10, 30, 30, 40, 60]);
        assert_eq!(start_times(&served), [0, 10, 20, 30, 50]);
        assert_eq!(served.busy, 50);
    }

    #[test]
    fn the_batch_limit_sends_a_connection_back_to_the_tail() {
        // Limit 2: connection 0 has three pending at 10 and serves two
        // (10..30); connection 1, ready since 12, goes before its third.
        let reqs = requests(10, &[(0, 0), (1, 0), (2, 0), (3, 0), (12, 1)]);
        let batching = Batching {
            limit: 2,
            slice: None,
        };
        let served = serve(Discipline::Single, batching, &reqs, 0);
        assert_eq!(done_times(&served), [10, 30, 30, 50, 40]);
    }

    #[test]
    fn a_slice_cuts_a_batch_after_the_request_that_reaches_it() {
        // Slice 25 ns: of four pending at 10, the batch ends after the
        // third (work 30 >= 25, the second brought only 20); the fourth
        // waits for the connection's next turn.
        let reqs = requests(10, &[(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)]);
        let batching = Batching {
            limit: 20,
            slice: Some(25),
        };
        let served = serve(Discipline::Central { servers: 1 }, batching, &reqs, 0);
        assert_eq!(done_times(&served), [10, 40, 40, 40, 50]);
        // A slice shorter than one request still serves that request.
        let batching = Batching {
            limit: 20,
            slice: Some(1),
        };
        let served = serve(Discipline::Central { servers: 1 }, batching, &reqs, 0);
        assert_eq!(done_times(&served), [10, 20, 30, 40, 50]);
    }

    #[test]
    fn an_arrival_as_a_batch_ends_is_pending_then() {
        let reqs = requests(10, &[(0, 0), (10, 0), (10, 1)]);
        let served = serve(Discipline::Single, UNBATCHED, &reqs, 0);
        // Connection 0 rejoins at 10 behind connection 1, which became
        // ready at 10 while 0 was still in service.
        assert_eq!(done_times(&served), [10, 30, 20]);
    }

    #[test]
    fn partitioned_connections_wait_only_for_their_own_loop() {
        // Two loops: connections 0 and 2 share loop 0, 1 has loop 1 alone.
        let reqs = requests(10, &[(0, 0), (1, 2), (2, 1)]);
        let served = serve(Discipline::Partitioned { servers: 2 }, UNBATCHED, &reqs, 0);
        assert_eq!(done_times(&served), [10, 20, 12]);
        // The same arrivals on one central queue with two workers: the
        // second worker takes connection 2 at once.
        let served = serve(Discipline::Central { servers: 2 }, UNBATCHED, &reqs, 0);
        assert_eq!(done_times(&served), [10, 11, 20]);
    }

    #[test]
    fn a_connection_has_one_batch_in_flight() {
        // Two idle workers, but the second request of connection 0 waits
        // for the first's batch to end.
        let reqs = requests(10, &[(0, 0), (1, 0)]);
        let served = serve(Discipline::Central { servers: 2 }, UNBATCHED, &reqs, 0);
        assert_eq!(done_times(&served), [10, 20]);
    }
}
