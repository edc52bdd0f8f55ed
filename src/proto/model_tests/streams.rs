//! Streams between two correct peers: random interleavings of opening, writing, reading,
//! finishing, resetting, stopping and dropping handles, and message delivery.
//!
//! Whatever the interleaving: every byte a reader gets is a prefix of what the writer wrote; a
//! finished, undisturbed stream delivers exactly what was written and then the end; a reset or a
//! stop arrives with the code it was sent with, a dropped handle finishes or stops as documented;
//! each end was published as an event first; the connection stays open.

use proptest::prelude::*;

use super::world::{op, Message, Op, World};
use crate::proto::{wire::Frame, ErrorCode, Half, ReadOutcome, StreamError, Transmit};

proptest! {
    #![proptest_config(super::cases(1024))]

    #[test]
    fn random_interleavings_deliver_bytes_codes_and_events(
        window in prop_oneof![Just(1u32), Just(16), Just(100), Just(1 << 20)],
        coalesce in any::<bool>(),
        ops in proptest::collection::vec(op(false), 1..120),
    ) {
        let mut world = World::new(World::small(window, coalesce));
        for op in ops {
            world.apply(op);
        }
        world.quiesce();
        world.check_still_open();
        world.check_truthful();
        world.check_delivery();
        world.check_end_events();
    }
}

#[test]
fn late_error_after_fin_keeps_the_data() {
    // The peer library replies to our messages with mirror images; an ERROR Read arriving after
    // its FIN must not discard bytes we have not read yet.
    let mut world = World::new(World::small(1 << 20, false));
    world.apply(Op::Open(0));
    world.deliver(0, 10);
    world.deliver(1, 10);
    let key = world.known[1][0];
    let client_key = world.known[0][0];
    world.mux[1].write(key, world.now, b"kept").unwrap();
    world.mux[1].finish(key).unwrap();
    world.pump_out(1);
    let reset = Frame::Error(Half::Read, ErrorCode(7)).to_bytes(key.id());
    world.wire[1].push_back(Message::Binary(reset));
    world.deliver(1, 10);
    let mut buf = [0u8; 8];
    assert!(matches!(
        world.mux[0].read(client_key, &mut buf),
        Ok(ReadOutcome::Data(4))
    ));
    assert_eq!(&buf[..4], b"kept");
    assert!(matches!(
        world.mux[0].read(client_key, &mut buf),
        Ok(ReadOutcome::End)
    ));
}

#[test]
fn a_stop_after_the_peers_fin_fails_reads_instead_of_ending_them() {
    // Found by the mux_core fuzz target: the peer finished, the application stopped reading with
    // bytes still buffered, and a later read returned a clean end of stream — as if the dropped
    // bytes had been read.
    let mut world = World::new(World::small(1 << 20, false));
    world.apply(Op::Open(0));
    world.deliver(0, 10);
    world.deliver(1, 10);
    let (client, server) = (world.known[0][0], world.known[1][0]);
    world.mux[1].write(server, world.now, b"unread").unwrap();
    world.mux[1].finish(server).unwrap();
    world.deliver(1, 10);
    world.mux[0].stop(client, ErrorCode(5)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        world.mux[0].read(client, &mut buf),
        Err(StreamError::LocallyEnded(ErrorCode(5)))
    );
}

#[test]
fn sends_take_turns_between_streams() {
    let mut world = World::new(World::small(1 << 20, false));
    for _ in 0..3 {
        world.apply(Op::Open(0));
    }
    world.deliver(0, 100);
    world.deliver(1, 100);
    let ids = world.known[0].clone();
    for id in &ids {
        // 3 messages' worth each (max 37 bytes per DATA message in this world).
        assert_eq!(
            world.mux[0].write(*id, world.now, &[1u8; 111]).unwrap(),
            111
        );
    }
    let mut order = Vec::new();
    while let Some(Transmit::Binary(msg)) = world.mux[0].poll_transmit(world.now, false) {
        let (id, _) = Frame::decode(&msg).unwrap();
        order.push(id.0);
    }
    let expected: Vec<u64> = (0..3)
        .flat_map(|_| ids.iter().map(|id| id.id().0))
        .collect();
    assert_eq!(order, expected, "round-robin, one message per turn");
}

#[test]
fn coalescing_holds_small_writes_until_full_or_uncorked() {
    let mut world = World::new(World::small(1 << 20, true));
    world.apply(Op::Open(0));
    world.deliver(0, 10);
    world.deliver(1, 10);
    let id = world.known[0][0];
    // 37-byte DATA messages in this world: 10 writes of 10 bytes fill two and start a third.
    for _ in 0..10 {
        assert_eq!(world.mux[0].write(id, world.now, &[5u8; 10]).unwrap(), 10);
    }
    let mut sizes = Vec::new();
    while let Some(Transmit::Binary(msg)) = world.mux[0].poll_transmit(world.now, false) {
        sizes.push(msg.len() - 3);
    }
    assert_eq!(sizes, [37, 37], "only full messages leave while corked");
    let Some(Transmit::Binary(rest)) = world.mux[0].poll_transmit(world.now, true) else {
        panic!("the partial message leaves once uncorked");
    };
    assert_eq!(rest.len() - 3, 26);
    assert!(world.mux[0].poll_transmit(world.now, true).is_none());
}
