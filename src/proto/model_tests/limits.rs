//! Stream limits (`Config::max_streams`, counted apart for each side's streams): with explicit
//! accepts, random traffic reaches them from both sides.
//!
//! - `open` waits (`Ok(None)`) exactly when as many of our streams are open as the limit allows,
//!   and once one of them is over, `Wake::Openable` says so;
//! - a stream the peer opens beyond the limit — unaccepted ones count — is refused: the refuser
//!   publishes `StreamRefused` and never hands it out; the opener sees both halves ended with
//!   code 0 (its reads fail with `Reset(0)`, its writes with `Stopped(0)`), each published;
//! - a side never holds more than the limit of each kind.

use proptest::prelude::*;

use super::world::{op, Op, World};
use crate::proto::{Dir, ErrorCode, Event, Half, StreamError, Wake};

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn at_the_limit_open_waits_and_the_peers_streams_are_refused(
        max in 1..4usize,
        ops in proptest::collection::vec(op(true), 1..150),
    ) {
        let mut world = World::new(World::small(1 << 20, false).max_streams(max));
        world.auto_accept = false;
        // Where each side's wakes stood when an open last had to wait.
        let mut waited: [Option<usize>; 2] = [None, None];
        for op in ops {
            let Op::Open(side) = op else {
                world.apply(op);
                for side in 0..2 {
                    assert!(world.mux[side].stream_count() <= 2 * max);
                }
                continue;
            };
            let live = world.known[side]
                .iter()
                .filter(|key| key.id().initiator() == world.mux[side].side())
                .filter(|key| world.mux[side].stream_id(**key).is_some())
                .count();
            match world.mux[side].open(world.now, Dir::Bi) {
                Ok(Some(key)) => {
                    assert!(live < max, "side {side} opened a stream beyond the limit");
                    world.known[side].push(key);
                }
                Ok(None) => {
                    assert_eq!(live, max, "side {side}: open waits below the limit");
                    world.observe(side);
                    waited[side] = Some(world.wakes[side].len());
                }
                Err(err) => panic!("open failed: {err:?}"),
            }
        }
        for side in 0..2 {
            world.accept(side);
        }
        world.quiesce();
        world.check_still_open();
        world.check_truthful();
        for (side, waited) in waited.into_iter().enumerate() {
            // A slot freed since the last wait was announced.
            if let Some(since) = waited {
                let live = world.known[side]
                    .iter()
                    .filter(|key| key.id().initiator() == world.mux[side].side())
                    .filter(|key| world.mux[side].stream_id(**key).is_some())
                    .count();
                if live < max {
                    assert!(
                        world.wakes[side][since..].contains(&Wake::Openable(Dir::Bi)),
                        "side {side}: a slot freed without Openable"
                    );
                }
            }
            let opener = 1 - side;
            let refused: Vec<_> = world.events[side]
                .iter()
                .filter_map(|event| match event {
                    Event::StreamRefused { id } => Some(*id),
                    _ => None,
                })
                .collect();
            for id in refused {
                assert!(world.key(side, id).is_none(), "side {side} handed out refused {id}");
                let key = world.key(opener, id).expect("the opener holds it");
                let app = world.app(opener, key);
                if app.stopped.is_none() && !app.recv_released {
                    assert_eq!(
                        app.read_end,
                        Some(Err(StreamError::Reset(ErrorCode::UNKNOWN))),
                        "stream {id}: the opener's reads after the refusal"
                    );
                }
                if !app.finished && app.reset.is_none() && !app.send_released {
                    let err = world.mux[opener].write(key, world.now, b"x");
                    assert_eq!(err, Err(StreamError::Stopped(ErrorCode::UNKNOWN)));
                    let stopped = Event::StreamShutdown {
                        id,
                        half: Half::Write,
                        code: Some(ErrorCode::UNKNOWN),
                    };
                    assert!(world.events[opener].contains(&stopped));
                }
            }
        }
        world.check_end_events();
    }
}
