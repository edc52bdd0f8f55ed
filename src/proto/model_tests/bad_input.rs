//! Bad input mixed into correct traffic, with the outcome WIRE.md documents.
//!
//! On one stream (the connection carries on; every other stream is untouched):
//! - a malformed message: the receiver publishes `StreamParseError`, fails both halves with
//!   `Parse` and tells the sender with ERROR code 1 on both;
//! - DATA beyond the credit granted: the same with `StreamOverflow`, `Overflow` and code 2;
//! - DATA after the FIN, within credit: tolerated, nothing happens.
//!
//! On the connection, which then closes with the code and ends on both sides:
//! - a message for a stream of the receiver's own that it never opened, or one without a
//!   readable stream id: 1002; a text message: 1003; a message over the size limit: 1009.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::world::{op, Message, Op, World};
use crate::proto::{
    varint, wire::Frame, CloseCode, ConnectionError, Event, Initiator, ProtoError, StreamId,
};

/// Bad input on one stream, sent by side `.0` on its stream `.1` (picked among those it knows).
#[derive(Debug, Clone)]
enum Step {
    Op(Op),
    Malformed(usize, usize),
    BeyondCredit(usize, usize),
    DataAfterFin(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    let (side, pick) = (0..2usize, any::<usize>());
    prop_oneof![
        12 => op(false).prop_map(Step::Op),
        1 => (side.clone(), pick).prop_map(|(s, i)| Step::Malformed(s, i)),
        1 => (side.clone(), pick).prop_map(|(s, i)| Step::BeyondCredit(s, i)),
        1 => (side, pick).prop_map(|(s, i)| Step::DataAfterFin(s, i)),
    ]
}

/// Delivers what `from` sent so far, then hands `to` the bad message right behind it, and
/// returns the event it must publish for it, if any.
fn inject(world: &mut World, step: &Step) -> Option<(usize, Event)> {
    let (Step::Malformed(from, pick)
    | Step::BeyondCredit(from, pick)
    | Step::DataAfterFin(from, pick)) = *step
    else {
        return None;
    };
    let to = 1 - from;
    let key = world.pick(from, pick)?;
    let id = key.id();
    // Everything the sender sent is in, and everything the receiver granted is on the wire.
    let n = world.wire[from].len();
    world.deliver(from, n);
    world.pump_out(to);
    let to_key = world.key(to, id)?;
    let live = world.mux[to].stream_id(to_key).is_some();
    let arrived = world.arrived[to].entry(id).or_default();
    let failed_before = arrived.malformed || arrived.overflowed;
    // The credit on the wire is a lower bound of what the receiver granted.
    let received = arrived.data.len() as u64;
    let credit = world.granted[to].get(&id).copied().unwrap_or(0);
    let (message, event) = match step {
        Step::Malformed(..) => {
            arrived.malformed = true;
            let mut out = BytesMut::new();
            varint::encode(id.0, &mut out);
            out.put_u16(9); // no such message type
            (out.freeze(), Event::StreamParseError { id })
        }
        Step::BeyondCredit(..) => {
            arrived.overflowed = true;
            // A receiver never grants more than a window beyond what arrived (the ACKs on the
            // wire may show less: credit owed when its read side ended is never sent).
            let payload = vec![0xee; world.config.window as usize + 1];
            (
                Frame::Data(payload.into()).to_bytes(id),
                Event::StreamOverflow { id },
            )
        }
        _ => {
            if arrived.fin_at.is_none() || credit <= received {
                return None;
            }
            let events = world.events[to].len();
            let extra = Frame::Data(Bytes::from_static(b"!")).to_bytes(id);
            world.receive(to, Message::Binary(extra));
            assert_eq!(
                world.events[to].len(),
                events,
                "DATA after the FIN is tolerated"
            );
            return None;
        }
    };
    world.receive(to, Message::Binary(message));
    (live && !failed_before).then_some((to, event))
}

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn bad_stream_input_ends_that_stream_only(
        window in prop_oneof![Just(16u32), Just(100), Just(1 << 20)],
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let mut world = World::new(World::small(window, false));
        let mut expected = Vec::new();
        for step in steps {
            match step {
                Step::Op(op) => world.apply(op),
                bad => expected.extend(inject(&mut world, &bad)),
            }
        }
        world.quiesce();
        world.check_still_open();
        world.check_truthful();
        world.check_end_events();
        for (side, event) in expected {
            assert!(world.events[side].contains(&event), "side {side}: {event:?} missing");
        }
    }
}

/// A connection-level violation from side `from`, after some traffic.
#[derive(Debug, Clone, Copy)]
enum Violation {
    UnopenedStream,
    NoStreamId,
    Text,
    TooBig,
}

proptest! {
    #![proptest_config(super::cases(256))]

    #[test]
    fn bad_connection_input_closes_with_its_code(
        ops in proptest::collection::vec(op(false), 0..60),
        from in 0..2usize,
        violation in prop_oneof![
            Just(Violation::UnopenedStream),
            Just(Violation::NoStreamId),
            Just(Violation::Text),
            Just(Violation::TooBig),
        ],
    ) {
        let mut world = World::new(World::small(100, false));
        for op in ops {
            world.apply(op);
        }
        let to = 1 - from;
        let n = world.wire[from].len();
        world.deliver(from, n);
        let now = world.now;
        let expected = match violation {
            Violation::UnopenedStream => {
                // Far beyond any id the receiver opened, and of its parity.
                let id = 2000 + world.mux[to].side().parity();
                let ack = Frame::Ack(1).to_bytes(StreamId(id));
                world.mux[to].handle_message(now, ack);
                ProtoError::UnopenedStream(id)
            }
            Violation::NoStreamId => {
                world.mux[to].handle_message(now, Bytes::new());
                ProtoError::BadStreamId
            }
            Violation::Text => {
                world.mux[to].handle_text(now, 5);
                ProtoError::TextMessage
            }
            Violation::TooBig => {
                let max = world.config.effective_max_message_size();
                world.mux[to].handle_message(now, Bytes::from(vec![0; max + 1]));
                ProtoError::MessageTooBig { max }
            }
        };
        world.observe(to);
        world.quiesce();
        let code = expected.close_code();
        let reason = expected.close_reason().to_owned();
        assert!(world.events[to].contains(&Event::Violation(expected.clone())));
        assert_eq!(world.mux[to].terminal(), Some(&ConnectionError::Violation(expected)));
        let peer_end = ConnectionError::Closed { code, reason: reason.clone(), initiator: Initiator::Peer };
        assert_eq!(world.mux[from].terminal(), Some(&peer_end));
        assert!(world.events[from].contains(&Event::CloseFrame { code, reason }));
        assert!(matches!(code, CloseCode::PROTOCOL_ERROR | CloseCode::UNSUPPORTED_DATA | CloseCode::TOO_BIG));
        for side in 0..2 {
            for key in world.known[side].clone() {
                let app = world.app(side, key);
                assert!(app.recv_released || app.read_end.is_some(), "side {side}: a stream still reads");
            }
        }
        world.check_truthful();
    }
}

#[test]
fn a_stream_failed_before_its_opening_left_still_opens_first() {
    // Found by the mux_core fuzz target: a malformed message for a stream of ours whose opening
    // ACK had not left yet dropped that ACK with the credit, so the stream's first message was
    // its ERROR — a malformed opening for the peer.
    let mut world = World::new(World::small(100, false));
    world.apply(Op::Open(0));
    let mut malformed = BytesMut::new();
    varint::encode(0, &mut malformed);
    malformed.put_u16(9);
    world.mux[0].handle_message(world.now, malformed.freeze());
    world.pump_out(0);
    let Some(Message::Binary(first)) = world.wire[0].front() else {
        panic!("nothing sent");
    };
    assert!(matches!(Frame::decode(first), Ok((_, Frame::Ack(_)))));
    world.quiesce();
    let parse_error = |event: &Event| matches!(event, Event::StreamParseError { .. });
    assert!(
        !world.events[1].iter().any(parse_error),
        "{:?}",
        world.events[1]
    );
}
