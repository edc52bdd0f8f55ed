//! Closing the connection: from either side in the middle of random traffic, from both at once,
//! and by dropping every handle (with a driver that completes the handshake, or without one).
//!
//! Whatever the traffic: the closing handshake completes (each side's Close frame reaches the
//! other, which echoes it), each side ends with the close as seen from its end and publishes it
//! (`CloseFrame`, then `Closed` last), every stream ends with the close — or with what ended it
//! before — and the data the closing side wrote before its close arrives whole first.

use proptest::prelude::*;

use super::world::{op, World};
use crate::proto::{
    CloseCode, CloseOutcome, ConnectionError, Dir, Event, Initiator, OpenError, StreamError,
};

fn closed(code: CloseCode, reason: &str, initiator: Initiator) -> ConnectionError {
    ConnectionError::Closed {
        code,
        reason: reason.to_owned(),
        initiator,
    }
}

/// Each side ended with `ends[side]`, published after the other side's Close frame, last.
fn check_ends(world: &World, ends: [ConnectionError; 2], frames: [(CloseCode, &str); 2]) {
    for side in 0..2 {
        assert_eq!(world.mux[side].terminal(), Some(&ends[side]), "side {side}");
        let events = &world.events[side];
        assert_eq!(events.last(), Some(&Event::Closed(ends[side].clone())));
        let (code, reason) = frames[side];
        let frame = Event::CloseFrame {
            code,
            reason: reason.to_owned(),
        };
        assert!(
            events.contains(&frame),
            "side {side}: {frame:?} in {events:?}"
        );
    }
}

/// After the close, every stream has ended — in its reads, and in its writes, where nothing
/// else ended them first, with the side's close — and nothing new starts.
fn check_streams_ended(world: &mut World) {
    for side in 0..2 {
        let closing = world.closing[side].clone().expect("closed");
        assert!(matches!(
            world.mux[side].open(world.now, Dir::Bi),
            Err(OpenError::Closed(_))
        ));
        assert!(world.mux[side].accept(Dir::Bi).is_err());
        for key in world.known[side].clone() {
            let app = world.app(side, key);
            assert!(
                app.recv_released || app.read_end.is_some(),
                "side {side}, stream {}: reading never ended",
                key.id()
            );
            if app.send_released {
                continue;
            }
            let untouched = !app.finished && app.reset.is_none() && app.write_error.is_none();
            let err = world.mux[side]
                .write(key, world.now, b"late")
                .expect_err("writing after the close");
            if untouched
                && world.arrived[side]
                    .get(&key.id())
                    .is_none_or(|a| a.stops.is_empty())
            {
                assert_eq!(err, StreamError::ConnectionLost(closing.clone()));
            }
            world.app(side, key).write_error = Some(err);
        }
    }
    world.check_truthful();
}

/// Every stream the closer wrote on arrived whole at the peer, unless a reset or stop cut it.
fn check_written_before_close_arrived(world: &World, closer: usize) {
    let peer = 1 - closer;
    for (id, w) in &world.apps[closer] {
        let Some(r) = world.apps[peer].get(id) else {
            continue;
        };
        let cut = w.reset.is_some()
            || r.stopped.is_some()
            || r.recv_released
            || world.arrived[closer]
                .get(id)
                .is_some_and(|a| !a.stops.is_empty());
        if !cut {
            assert_eq!(
                r.read, w.written,
                "stream {id}: bytes written before the close lost"
            );
        }
    }
}

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn a_close_from_either_side_ends_every_stream_with_it(
        window in prop_oneof![Just(16u32), Just(100), Just(1 << 20)],
        closer in 0..2usize,
        code in prop_oneof![Just(1000u16), Just(1001), 4000..5000u16],
        reason in "[a-z ]{0,30}",
        before in proptest::collection::vec(op(false), 0..80),
        after in proptest::collection::vec(op(false), 0..20),
    ) {
        let mut world = World::new(World::small(window, false));
        for op in before {
            world.apply(op);
        }
        let code = CloseCode(code);
        world.mux[closer].close(world.now, code, &reason).expect("open");
        world.observe(closer);
        for op in after {
            world.apply(op);
        }
        world.quiesce();
        let end = |side: usize| {
            let initiator = if side == closer { Initiator::Local } else { Initiator::Peer };
            closed(code, &reason, initiator)
        };
        check_ends(&world, [end(0), end(1)], [(code, reason.as_str()); 2]);
        assert_eq!(world.mux[closer].close_outcome(), Some(&CloseOutcome::Completed));
        check_written_before_close_arrived(&world, closer);
        check_streams_ended(&mut world);
    }

    #[test]
    fn closes_from_both_sides_at_once_complete_both(
        ops in proptest::collection::vec(op(false), 0..60),
        codes in (4000..5000u16, 4000..5000u16),
    ) {
        let mut world = World::new(World::small(100, false));
        for op in ops {
            world.apply(op);
        }
        let codes = [CloseCode(codes.0), CloseCode(codes.1)];
        for (side, code) in codes.into_iter().enumerate() {
            // Each Close frame is on its way before the other arrives.
            world.mux[side].close(world.now, code, "both").expect("open");
            world.pump_out(side);
        }
        world.quiesce();
        // Each side's own close is the one it ends with; each saw the other's frame.
        check_ends(
            &world,
            [0, 1].map(|side| closed(codes[side], "both", Initiator::Local)),
            [(codes[1], "both"), (codes[0], "both")],
        );
        for side in 0..2 {
            assert_eq!(world.mux[side].close_outcome(), Some(&CloseOutcome::Completed));
        }
        check_streams_ended(&mut world);
    }

    #[test]
    fn dropping_every_handle_closes_with_1000(
        window in prop_oneof![Just(16u32), Just(1 << 20)],
        dropper in 0..2usize,
        driver in any::<bool>(),
        ops in proptest::collection::vec(op(false), 0..80),
    ) {
        let mut world = World::new(World::small(window, false));
        for op in ops {
            world.apply(op);
        }
        // Each stream handle goes, and the engine sends what its drop queued (the FIN, the
        // stop); then the connection handle goes: the engine's `abandon` closes with 1000.
        for key in world.known[dropper].clone() {
            world.release(dropper, key, 3);
            world.pump_out(dropper);
        }
        world.mux[dropper].close(world.now, CloseCode::NORMAL, "").expect("open");
        world.pump_out(dropper);
        if !driver {
            // No driver: the socket is dropped right after the Close frame was handed to it.
            world.mux[dropper].handle_ended(world.now, String::new());
            world.observe(dropper);
        }
        world.quiesce();
        let peer = 1 - dropper;
        let normal = |initiator| closed(CloseCode::NORMAL, "", initiator);
        assert_eq!(world.mux[peer].terminal(), Some(&normal(Initiator::Peer)));
        let (end, outcome) = if driver {
            (normal(Initiator::Local), CloseOutcome::Completed)
        } else {
            let detail = "connection ended without a close frame".to_owned();
            (ConnectionError::Abnormal { detail }, CloseOutcome::Abnormal)
        };
        assert_eq!(world.mux[dropper].terminal(), Some(&end));
        assert_eq!(world.mux[dropper].close_outcome(), Some(&outcome));
        // What was dropped was finished: everything written arrived, then the end of stream —
        // on every stream the peer had answered (a FIN waits for the peer's first ACK).
        for (id, w) in &world.apps[dropper] {
            let Some(r) = world.apps[peer].get(id) else {
                continue;
            };
            let at_dropper = world.arrived[dropper].get(id);
            let cut = w.reset.is_some()
                || r.stopped.is_some()
                || r.recv_released
                || at_dropper.is_some_and(|a| !a.stops.is_empty());
            if !cut && at_dropper.is_some_and(|a| a.acked) {
                assert_eq!(r.read, w.written, "stream {id}: bytes lost");
                assert_eq!(r.read_end, Some(Ok(())), "stream {id}: no end of stream");
            }
        }
        world.check_truthful();
    }
}

/// The client opens a stream, so that its opening ACK is owed, and returns the stream.
fn opened_but_unanswered(world: &mut World) -> crate::proto::StreamKey {
    world.apply(super::world::Op::Open(0));
    world.known[0][0]
}

#[test]
fn a_close_right_after_finishing_an_unanswered_stream_completes() {
    // Found by these tests: the FIN waited for the peer's first ACK, which a closing side no
    // longer takes, and the stream kept its place in the send schedule with nothing to send — so
    // our Close frame never left, and the close could only time out.
    let mut world = World::new(World::small(100, false));
    let key = opened_but_unanswered(&mut world);
    world.mux[0].finish(key).unwrap();
    world.mux[0]
        .close(world.now, CloseCode::NORMAL, "")
        .unwrap();
    world.quiesce();
    assert_eq!(world.mux[0].close_outcome(), Some(&CloseOutcome::Completed));
}

#[test]
fn a_stream_reset_before_the_close_still_opens_first() {
    // Found by these tests: closing dropped the credit every stream owed, the opening ACK of a
    // stream the peer had not heard of included, so its reset reached the peer as the stream's
    // first message — a malformed opening, which the peer reported as our parse error.
    let mut world = World::new(World::small(100, false));
    let key = opened_but_unanswered(&mut world);
    world.mux[0].reset(key, crate::proto::ErrorCode(3)).unwrap();
    world.mux[0]
        .close(world.now, CloseCode::NORMAL, "")
        .unwrap();
    world.quiesce();
    let parse_error = |event: &Event| matches!(event, Event::StreamParseError { .. });
    assert!(
        !world.events[1].iter().any(parse_error),
        "{:?}",
        world.events[1]
    );
    world.check_truthful();
}
