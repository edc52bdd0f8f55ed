//! Two QMux `Mux`es joined in memory: what each sends, byte for byte where QMUX.md fixes it, and
//! what each side's application sees.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{transport_error as code, Decoder, Frame, QmuxVersion};
use crate::proto::{
    CloseCode, Config, ConnectionError, Dir, ErrorCode, Event, Half, Initiator, Mux, ProtoError,
    Protocol, ReadOutcome, Side, StreamError, StreamId, StreamKey, Transmit,
};

const CLIENT: usize = 0;
const SERVER: usize = 1;

struct Pair {
    now: Instant,
    mux: [Mux; 2],
    /// Everything each side sent, in order.
    sent: [Vec<Transmit>; 2],
    events: [Vec<Event>; 2],
    /// tungstenite's echo of a Close frame a side received before sending its own.
    echo: [Option<Transmit>; 2],
}

impl Pair {
    fn new(client: Config, server: Config) -> Self {
        let now = Instant::now();
        let v02 = Protocol::Qmux(QmuxVersion::V02);
        Self {
            now,
            mux: [
                Mux::new(Side::Client, v02, client, now),
                Mux::new(Side::Server, v02, server, now),
            ],
            sent: Default::default(),
            events: Default::default(),
            echo: Default::default(),
        }
    }

    fn default_pair() -> Self {
        Self::new(Config::default(), Config::default())
    }

    /// What `side` sends now, without delivering it.
    fn take_output(&mut self, side: usize) -> Vec<Transmit> {
        let mut out: Vec<Transmit> = self.echo[side].take().into_iter().collect();
        while let Some(transmit) = self.mux[side].poll_transmit(self.now, true) {
            out.push(transmit);
        }
        self.mux[side].handle_flushed(self.now);
        while self.mux[side].poll_wake().is_some() {}
        while let Some(event) = self.mux[side].poll_event() {
            self.events[side].push(event);
        }
        self.sent[side].extend(out.iter().cloned());
        out
    }

    fn deliver(&mut self, to: usize, transmits: Vec<Transmit>) {
        for transmit in transmits {
            match transmit {
                Transmit::Binary(record) => self.mux[to].handle_message(self.now, record),
                Transmit::Ping(payload) => self.mux[to].handle_ping(self.now, payload),
                Transmit::Close { code, reason } => {
                    let echoed = self.sent[to]
                        .iter()
                        .any(|t| matches!(t, Transmit::Close { .. }));
                    if !echoed {
                        self.echo[to] = Some(Transmit::Close {
                            code,
                            reason: reason.clone(),
                        });
                    }
                    self.mux[to].handle_close_frame(self.now, Some((code, reason)))
                }
            }
        }
        while let Some(event) = self.mux[to].poll_event() {
            self.events[to].push(event);
        }
    }

    /// Exchanges messages until both sides are quiet.
    fn settle(&mut self) {
        for _ in 0..1000 {
            let a = self.take_output(CLIENT);
            let b = self.take_output(SERVER);
            if a.is_empty() && b.is_empty() {
                return;
            }
            self.deliver(SERVER, a);
            self.deliver(CLIENT, b);
        }
        panic!("the pair never settled");
    }

    fn open(&mut self, side: usize, dir: Dir) -> StreamKey {
        self.mux[side]
            .open(self.now, dir)
            .unwrap()
            .expect("room to open")
    }

    fn accept(&mut self, side: usize, dir: Dir) -> StreamKey {
        self.mux[side]
            .accept(dir)
            .unwrap()
            .expect("a stream to accept")
    }

    fn write(&mut self, side: usize, key: StreamKey, data: &[u8]) -> usize {
        self.mux[side].write(key, self.now, data).unwrap()
    }

    fn read_all(
        &mut self,
        side: usize,
        key: StreamKey,
    ) -> (Vec<u8>, Result<ReadOutcome, StreamError>) {
        let mut got = Vec::new();
        let mut buf = [0; 4096];
        loop {
            match self.mux[side].read(key, &mut buf) {
                Ok(ReadOutcome::Data(n)) => got.extend_from_slice(&buf[..n]),
                other => return (got, other),
            }
        }
    }

    /// The frames `side` sent, decoded, skipping its transport parameters.
    fn frames_sent(&self, side: usize) -> Vec<Frame> {
        self.sent[side]
            .iter()
            .filter_map(|t| match t {
                Transmit::Binary(record) => Some(record.clone()),
                _ => None,
            })
            .flat_map(|record| {
                let mut decoder = Decoder::new(record);
                std::iter::from_fn(move || decoder.next_frame().map(Result::unwrap))
                    .collect::<Vec<_>>()
            })
            .filter(|frame| !matches!(frame, Frame::TransportParameters(_)))
            .collect()
    }

    fn closes_sent(&self, side: usize) -> Vec<CloseCode> {
        self.sent[side]
            .iter()
            .filter_map(|t| match t {
                Transmit::Close { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }
}

fn record(bytes: &[u8]) -> Transmit {
    Transmit::Binary(Bytes::copy_from_slice(bytes))
}

#[test]
fn parameters_go_first_and_opens_wait_for_the_peers() {
    let mut pair = Pair::default_pair();
    assert_eq!(
        pair.mux[CLIENT].open(pair.now, Dir::Bi),
        Ok(None),
        "no parameters yet"
    );
    let out = pair.take_output(CLIENT);
    let [Transmit::Binary(params)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(&params[..8], b"\xffQS0\r\n\r\n");
    let server_params = pair.take_output(SERVER);
    pair.deliver(CLIENT, server_params);
    assert!(pair.mux[CLIENT].open(pair.now, Dir::Bi).unwrap().is_some());
}

#[test]
fn a_streams_first_frame_carries_its_data() {
    let mut pair = Pair::default_pair();
    pair.settle();
    let key = pair.open(CLIENT, Dir::Bi);
    assert_eq!(
        pair.write(CLIENT, key, b"hello"),
        5,
        "the peer's initial window allows it"
    );
    let out = pair.take_output(CLIENT);
    assert_eq!(
        out,
        [record(b"\x0e\x00\x00\x05hello")],
        "no announcement, no wait"
    );
    pair.deliver(SERVER, out);
    let accepted = pair.accept(SERVER, Dir::Bi);
    assert_eq!(accepted.id(), StreamId(0));
    assert_eq!(pair.read_all(SERVER, accepted).0, b"hello");
}

#[test]
fn a_short_stream_is_one_record_each_way() {
    // A request written and finished before the driver sends: its one frame carries the data,
    // opens the stream and finishes it. The answer does the same.
    let mut pair = Pair::default_pair();
    pair.settle();
    let key = pair.open(CLIENT, Dir::Bi);
    pair.write(CLIENT, key, b"ping");
    pair.mux[CLIENT].finish(key).unwrap();
    let out = pair.take_output(CLIENT);
    assert_eq!(
        out,
        [record(b"\x0f\x00\x00\x04ping")],
        "data and FIN in one"
    );
    pair.deliver(SERVER, out);
    let accepted = pair.accept(SERVER, Dir::Bi);
    assert_eq!(
        pair.read_all(SERVER, accepted),
        (b"ping".to_vec(), Ok(ReadOutcome::End))
    );
    pair.write(SERVER, accepted, b"pong");
    pair.mux[SERVER].finish(accepted).unwrap();
    let out = pair.take_output(SERVER);
    let [Transmit::Binary(answer)] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(answer.ends_with(b"\x0f\x00\x00\x04pong"), "{answer:?}");
    pair.deliver(CLIENT, out);
    assert_eq!(
        pair.read_all(CLIENT, key),
        (b"pong".to_vec(), Ok(ReadOutcome::End))
    );

    // Finished after its data left: the FIN is a frame of its own.
    let key = pair.open(CLIENT, Dir::Bi);
    pair.write(CLIENT, key, b"late");
    pair.take_output(CLIENT);
    pair.mux[CLIENT].finish(key).unwrap();
    assert_eq!(
        pair.take_output(CLIENT),
        [record(b"\x0f\x04\x04\x00")],
        "an empty FIN at offset 4"
    );
}

#[test]
fn a_stream_opened_without_data_is_announced_by_an_empty_frame() {
    let mut pair = Pair::default_pair();
    pair.settle();
    let first = pair.open(SERVER, Dir::Bi);
    let second = pair.open(SERVER, Dir::Uni);
    assert_eq!((first.id(), second.id()), (StreamId(1), StreamId(3)));
    let out = pair.take_output(SERVER);
    assert_eq!(
        out,
        [record(b"\x0e\x01\x00\x00\x0e\x03\x00\x00")],
        "both in one record"
    );
    pair.deliver(CLIENT, out);
    assert_eq!(pair.accept(CLIENT, Dir::Bi).id(), StreamId(1));
    assert_eq!(pair.accept(CLIENT, Dir::Uni).id(), StreamId(3));
}

#[test]
fn fin_reset_and_stop_reach_the_peer_with_their_codes() {
    let mut pair = Pair::default_pair();
    pair.settle();
    let [a, b, c] = [(); 3].map(|()| pair.open(CLIENT, Dir::Bi));
    pair.write(CLIENT, a, b"abc");
    assert_eq!(pair.mux[CLIENT].finish(a,), Ok(false));
    pair.write(CLIENT, b, b"lost");
    pair.mux[CLIENT].reset(b, ErrorCode(4001)).unwrap();
    pair.settle();
    let [sa, sb, sc] = [(); 3].map(|()| pair.accept(SERVER, Dir::Bi));
    assert_eq!(sc.id(), c.id());
    assert_eq!(
        pair.read_all(SERVER, sa),
        (b"abc".to_vec(), Ok(ReadOutcome::End))
    );
    assert_eq!(
        pair.read_all(SERVER, sb).1,
        Err(StreamError::Reset(ErrorCode(4001)))
    );
    // The reset said where the stream ends: nothing of it was sent.
    assert!(pair.frames_sent(CLIENT).contains(&Frame::ResetStream {
        id: b.id(),
        code: 4001,
        final_size: 0
    }));

    // A stop is answered by a reset with the same code (our writes fail with it).
    pair.mux[SERVER].stop(sc, ErrorCode(4002)).unwrap();
    pair.settle();
    assert_eq!(
        pair.mux[CLIENT].write(c, pair.now, b"x"),
        Err(StreamError::Stopped(ErrorCode(4002)))
    );
    assert!(pair.frames_sent(CLIENT).contains(&Frame::ResetStream {
        id: c.id(),
        code: 4002,
        final_size: 0
    }));
    assert!(pair.events[CLIENT].contains(&Event::StreamShutdown {
        id: c.id(),
        half: Half::Write,
        code: Some(ErrorCode(4002))
    }));
    assert!(pair.events[SERVER].contains(&Event::StreamShutdown {
        id: a.id(),
        half: Half::Read,
        code: None
    }));
}

#[test]
fn credit_is_absolute_and_granted_as_the_application_reads() {
    let small = Config::default().window(1000).receive_budget(1500);
    let mut pair = Pair::new(small.clone(), small);
    pair.settle();
    let key = pair.open(CLIENT, Dir::Bi);
    assert_eq!(
        pair.write(CLIENT, key, &[7; 5000]),
        1000,
        "the stream window"
    );
    let other = pair.open(CLIENT, Dir::Bi);
    assert_eq!(
        pair.write(CLIENT, other, &[8; 5000]),
        500,
        "the connection window"
    );
    assert_eq!(pair.write(CLIENT, other, &[8; 1]), 0);
    pair.settle();
    let accepted = pair.accept(SERVER, Dir::Bi);
    let (got, _) = pair.read_all(SERVER, accepted);
    assert_eq!(got.len(), 1000);
    pair.settle();
    let frames = pair.frames_sent(SERVER);
    assert!(frames.contains(&Frame::MaxStreamData {
        id: key.id(),
        max: 2000
    }));
    assert!(frames.contains(&Frame::MaxData(2500)));
    assert!(
        pair.mux[CLIENT].writable(other),
        "the writer is woken by MAX_DATA"
    );
    assert_eq!(pair.write(CLIENT, other, &[8; 5000]), 500);
}

#[test]
fn data_beyond_a_window_is_a_flow_control_error() {
    let mut pair = Pair::new(Config::default(), Config::default().window(10));
    pair.settle();
    let mut record = b"\x0e\x00\x00\x0b".to_vec();
    record.extend_from_slice(&[1; 11]);
    pair.deliver(SERVER, vec![self::record(&record)]);
    let out = pair.take_output(SERVER);
    let Some(Transmit::Binary(close)) = out.first() else {
        panic!("{out:?}")
    };
    let mut decoder = Decoder::new(close.clone());
    assert!(matches!(
        decoder.next_frame(),
        Some(Ok(Frame::ConnectionClose {
            code: code::FLOW_CONTROL_ERROR,
            ..
        }))
    ));
    assert_eq!(
        out.last(),
        Some(&Transmit::Close {
            code: CloseCode::PROTOCOL_ERROR,
            reason: "data beyond the stream window".into()
        })
    );
}

#[test]
fn stream_limits_are_cumulative_and_granted_back() {
    let two = Config::default().max_streams(2);
    let mut pair = Pair::new(two.clone(), two);
    pair.settle();
    let opened = [(); 2].map(|()| pair.open(CLIENT, Dir::Bi));
    assert_eq!(
        pair.mux[CLIENT].open(pair.now, Dir::Bi),
        Ok(None),
        "at the limit"
    );
    for key in opened {
        pair.mux[CLIENT].finish(key).unwrap();
    }
    pair.settle();
    for _ in 0..2 {
        let key = pair.accept(SERVER, Dir::Bi);
        assert_eq!(pair.read_all(SERVER, key).1, Ok(ReadOutcome::End));
        pair.mux[SERVER].finish(key).unwrap();
        pair.mux[SERVER].release(key, pair.now, true, true, false);
    }
    pair.settle();
    for key in opened {
        assert_eq!(pair.read_all(CLIENT, key).1, Ok(ReadOutcome::End));
        pair.mux[CLIENT].release(key, pair.now, true, true, false);
    }
    pair.settle();
    assert!(pair.frames_sent(SERVER).contains(&Frame::MaxStreams {
        dir: Dir::Bi,
        count: 3
    }));
    let third = pair.open(CLIENT, Dir::Bi);
    assert_eq!(third.id(), StreamId(8));

    // Beyond the limit: STREAM_LIMIT_ERROR (index 4 and up are not granted yet).
    pair.deliver(SERVER, vec![record(b"\x0e\x10\x00\x00")]);
    let frames: Vec<_> = pair.take_output(SERVER);
    assert!(frames.contains(&Transmit::Close {
        code: CloseCode::PROTOCOL_ERROR,
        reason: "stream beyond the limit we granted".into()
    }));
}

#[test]
fn a_stopped_stream_gives_its_connection_credit_back_when_the_peer_says_where_it_ends() {
    let small = Config::default().receive_budget(2000);
    let mut pair = Pair::new(small.clone(), small);
    pair.settle();
    let key = pair.open(CLIENT, Dir::Bi);
    assert_eq!(pair.write(CLIENT, key, &[1; 1500]), 1500);
    pair.settle();
    let accepted = pair.accept(SERVER, Dir::Bi);
    // Dropped unread: a stop, and the 1,500 bytes count as read.
    pair.mux[SERVER].release(accepted, pair.now, true, true, false);
    pair.settle();
    let next = pair.open(CLIENT, Dir::Bi);
    assert_eq!(
        pair.write(CLIENT, next, &[2; 2000]),
        2000,
        "the whole connection window is back"
    );
    assert_eq!(
        pair.mux[SERVER].stream_count(),
        0,
        "the stopped stream is forgotten"
    );
}

#[test]
fn our_close_sends_application_close_after_the_data_then_1000() {
    let mut pair = Pair::default_pair();
    pair.settle();
    let key = pair.open(CLIENT, Dir::Bi);
    pair.write(CLIENT, key, b"last words");
    pair.mux[CLIENT]
        .close_application(pair.now, ErrorCode(42), "done")
        .unwrap()
        .unwrap();
    pair.settle();
    let frames = pair.frames_sent(CLIENT);
    let close_at = frames
        .iter()
        .position(|f| matches!(f, Frame::ApplicationClose { code: 42, .. }))
        .expect("APPLICATION_CLOSE sent");
    assert!(
        frames[..close_at]
            .iter()
            .any(|f| matches!(f, Frame::Stream { data, .. } if data.as_ref() == b"last words")),
        "the data went first"
    );
    assert_eq!(pair.closes_sent(CLIENT), [CloseCode::NORMAL]);
    let accepted = pair.accept(SERVER, Dir::Bi);
    assert_eq!(pair.read_all(SERVER, accepted).0, b"last words");
    let peer_view = ConnectionError::ApplicationClosed {
        code: 42,
        reason: "done".into(),
        initiator: Initiator::Peer,
    };
    assert_eq!(pair.mux[SERVER].terminal(), Some(&peer_view));
    assert!(
        matches!(
            pair.mux[CLIENT].terminal(),
            Some(ConnectionError::ApplicationClosed {
                code: 42,
                initiator: Initiator::Local,
                ..
            })
        ),
        "{:?}",
        pair.mux[CLIENT].terminal()
    );
    assert_eq!(
        pair.mux[CLIENT].close_outcome(),
        Some(&crate::proto::CloseOutcome::Completed)
    );
}

#[test]
fn qx_ping_measures_the_round_trip_and_keeps_the_peer_alive() {
    let idle = Config::default().idle_timeout(Some(Duration::from_secs(30)));
    let mut pair = Pair::new(idle.clone(), idle);
    pair.settle();
    let number = pair.mux[CLIENT].ping().unwrap();
    let out = pair.take_output(CLIENT);
    assert_eq!(out, [record(b"\xf4\x8c\x67\x52\x9e\xf8\xc7\xbd\x00")]);
    pair.now += Duration::from_millis(40);
    pair.deliver(SERVER, out);
    let answer = pair.take_output(SERVER);
    assert_eq!(answer, [record(b"\xf4\x8c\x67\x52\x9e\xf8\xc7\xbe\x00")]);
    pair.now += Duration::from_millis(40);
    pair.deliver(CLIENT, answer);
    assert_eq!(
        pair.mux[CLIENT].ping_result(number),
        Some(Duration::from_millis(80))
    );

    // Quiet for a third of the idle timeout: a keep-alive QX_PING.
    pair.settle();
    let due = pair.mux[SERVER].poll_timeout().unwrap();
    assert!(due <= pair.now + Duration::from_secs(10));
    pair.now = due;
    pair.mux[SERVER].handle_timeout(pair.now);
    let out = pair.take_output(SERVER);
    assert!(matches!(
        &out[..],
        [Transmit::Binary(r)] if r.starts_with(b"\xf4\x8c\x67\x52\x9e\xf8\xc7\xbd")
    ));
}

#[test]
fn datagrams_flow_both_ways_within_the_peers_limit() {
    let mut pair = Pair::new(Config::default(), Config::default().datagram_queue(2));
    assert_eq!(pair.mux[CLIENT].max_datagram_size(), None, "not known yet");
    pair.settle();
    assert_eq!(pair.mux[CLIENT].max_datagram_size(), Some(16_379));
    for d in [&b"one"[..], b"two", b"three"] {
        pair.mux[CLIENT]
            .send_datagram(Bytes::copy_from_slice(d))
            .unwrap();
    }
    assert!(matches!(
        pair.mux[CLIENT].send_datagram(Bytes::from(vec![0; 16_380])),
        Err(crate::proto::DatagramError::TooLarge { max: 16_379, .. })
    ));
    pair.settle();
    // The server keeps two: the oldest gave way.
    assert_eq!(
        pair.mux[SERVER].read_datagram(),
        Ok(Some(Bytes::from_static(b"two")))
    );
    assert_eq!(
        pair.mux[SERVER].read_datagram(),
        Ok(Some(Bytes::from_static(b"three")))
    );
    assert_eq!(pair.mux[SERVER].read_datagram(), Ok(None));
    assert_eq!(pair.mux[SERVER].stats().datagrams_dropped, 1);
}

/// Found by the `qmux_core` fuzz target (its input is kept in `fuzz/corpus/qmux_core/` as
/// `crash-datagram-before-parameters`): a datagram queued before the peer's parameters left at
/// once, unchecked against a limit the peer had not told yet, to a peer that may accept none.
#[test]
fn datagrams_queued_early_wait_for_the_peers_parameters() {
    for (peer_size, delivered) in [(100, true), (0, false)] {
        let now = Instant::now();
        let v02 = Protocol::Qmux(QmuxVersion::V02);
        let mut mux = Mux::new(Side::Client, v02, Config::default(), now);
        mux.send_datagram(Bytes::from_static(b"early")).unwrap();
        let first = mux.poll_transmit(now, true);
        assert!(
            matches!(&first, Some(Transmit::Binary(r)) if r.starts_with(b"\xff\x51\x53\x30")),
            "{first:?}"
        );
        assert_eq!(
            mux.poll_transmit(now, true),
            None,
            "sent before the peer's limit"
        );
        let params = super::TransportParams {
            max_datagram_frame_size: peer_size,
            max_record_size: super::MIN_RECORD_SIZE,
            ..Default::default()
        };
        mux.handle_message(now, Frame::TransportParameters(params.encode()).to_bytes());
        let expected = Transmit::Binary(Frame::Datagram(Bytes::from_static(b"early")).to_bytes());
        let next = mux.poll_transmit(now, true);
        assert_eq!(next, delivered.then_some(expected), "peer size {peer_size}");
        assert_eq!(mux.stats().datagrams_dropped, u64::from(!delivered));
    }
}

#[test]
fn broken_rules_close_with_their_rfc_9000_codes() {
    let cases: [(&[u8], u64); 6] = [
        (b"\x0e\x01\x05\x01x", code::PROTOCOL_VIOLATION),
        (b"\x01", code::FRAME_ENCODING_ERROR),
        (b"\x0e\x01\x00\x05he", code::FRAME_ENCODING_ERROR),
        (b"\x0e\x00\x00\x00", code::STREAM_STATE_ERROR),
        (
            b"\xf4\x8c\x67\x52\x9e\xf8\xc7\xbe\x00",
            code::PROTOCOL_VIOLATION,
        ),
        (
            b"\xff\x51\x53\x30\x0d\x0a\x0d\x0a\x00",
            code::PROTOCOL_VIOLATION,
        ),
    ];
    for (bytes, expected) in cases {
        let mut pair = Pair::default_pair();
        pair.settle();
        pair.deliver(CLIENT, vec![record(bytes)]);
        pair.take_output(CLIENT);
        let closes: Vec<u64> = pair
            .frames_sent(CLIENT)
            .iter()
            .filter_map(|f| match f {
                Frame::ConnectionClose { code, .. } => Some(*code),
                _ => None,
            })
            .collect();
        assert_eq!(closes, [expected], "{bytes:02x?}");
        assert!(matches!(
            pair.mux[CLIENT].closing_error(),
            Some(ConnectionError::Violation(ProtoError::Qmux { .. }))
        ));
    }

    // A frame before the parameters, and a record over the size limit.
    let mut pair = Pair::default_pair();
    pair.deliver(SERVER, vec![record(b"\x0e\x00\x00\x01x")]);
    pair.take_output(SERVER);
    assert!(matches!(
        pair.frames_sent(SERVER)[..],
        [Frame::ConnectionClose {
            code: code::PROTOCOL_VIOLATION,
            ..
        }]
    ));
    let mut pair = Pair::default_pair();
    pair.settle();
    pair.deliver(SERVER, vec![Transmit::Binary(Bytes::from(vec![0; 16_383]))]);
    pair.take_output(SERVER);
    assert!(matches!(
        pair.frames_sent(SERVER).last(),
        Some(Frame::ConnectionClose {
            code: code::FRAME_ENCODING_ERROR,
            ..
        })
    ));
}

#[test]
fn the_peers_close_frames_end_everything_with_their_codes() {
    let mut pair = Pair::default_pair();
    pair.settle();
    let key = pair.open(CLIENT, Dir::Bi);
    pair.deliver(CLIENT, vec![record(b"\x1c\x43\xea\x00\x02no")]);
    assert_eq!(
        pair.mux[CLIENT].read(key, &mut [0; 4]),
        Err(StreamError::ConnectionLost(ConnectionError::PeerError {
            code: 1002,
            reason: "no".into()
        }))
    );
    pair.take_output(CLIENT);
    assert_eq!(
        pair.closes_sent(CLIENT),
        [CloseCode::NORMAL],
        "our Close answers at once"
    );
}
