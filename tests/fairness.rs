//! Fairness: a stream doing bulk transfer — its writer always has more to write — cannot starve a
//! stream doing request/response on the same connection. Streams of equal priority take turns,
//! one message each (README, "Priorities"), and each stream has its own window, so a bulk stream
//! that waits for credit holds up nobody.
//!
//! Asserted by progress and order, never by time: with a fast bulk reader, every request leaves
//! within one bulk message of being written (compared on the wire); with a slow one, every
//! request is answered while the bulk waits for credit, and the bulk moves at its reader's pace.

use crate::common;
use crate::faults_support;

use std::task::Poll;

use async_std::task;
use common::within;
use faults_support::{
    rig::{announced_stream, Rig},
    wire::{self, Transcript},
    Dir, Plan,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use ws_stream_mux::{Config, ErrorCode, RecvStream, SendStream, WsStream};

/// The size of a request, and of its response.
const MESSAGE: usize = 16;

/// The request of round `round`: different in every round.
fn request(round: usize) -> [u8; MESSAGE] {
    std::array::from_fn(|i| (round * 7 + i) as u8)
}

/// The server's side of the small stream: answers each request with its bytes reversed, and
/// tells `answered` after each.
async fn answer(mut small: WsStream, rounds: usize, mut answered: impl FnMut(usize)) {
    let mut request = [0u8; MESSAGE];
    for round in 0..rounds {
        small.read_exact(&mut request).await.expect("request");
        answered(round);
        request.reverse();
        small.write_all(&request).await.expect("response");
    }
}

/// One request and its response, which must be this request reversed: in order, none lost.
async fn round_trip(small: &mut WsStream, round: usize) {
    let request = request(round);
    small.write_all(&request).await.expect("request");
    let mut response = [0u8; MESSAGE];
    small.read_exact(&mut response).await.expect("response");
    let mut expected = request;
    expected.reverse();
    assert_eq!(
        response, expected,
        "round {round}: the answer to another request"
    );
}

/// The bulk stream's byte at `offset`: checkable at any offset without keeping a copy.
fn bulk_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 8)) as u8
}

fn fill_pattern(chunk: &mut [u8], offset: u64) {
    for (i, byte) in chunk.iter_mut().enumerate() {
        *byte = bulk_byte(offset + i as u64);
    }
}

/// Checks bulk bytes read at `offset`.
fn check_bulk(bytes: &[u8], offset: u64) {
    for (i, byte) in bytes.iter().enumerate() {
        let at = offset + i as u64;
        assert_eq!(*byte, bulk_byte(at), "bulk byte {at}");
    }
}

/// The bulk writer of the slow test: the pattern without end, for as long as the stream takes
/// it — its writes always have more to give.
async fn write_bulk_forever(mut send: SendStream) {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut offset = 0u64;
    loop {
        fill_pattern(&mut chunk, offset);
        if send.write_all(&chunk).await.is_err() {
            return; // the reader stopped the stream: the test is over
        }
        offset += chunk.len() as u64;
    }
}

/// A slow bulk reader: it reads 4 KiB per request answered, so the bulk writer always waits for
/// credit with the bulk's window full. The requests must get through anyway, in order, and the
/// bulk must move at the reader's pace, one step per request.
#[async_std::test]
async fn requests_are_answered_while_a_bulk_stream_waits_for_credit() {
    const ROUNDS: usize = 200;
    const PER_ROUND: usize = 4 * 1024;
    within("slow bulk reader", async {
        let mut rig = Rig::new().await;
        let (client, server, _link) = rig.conn_pair(Config::default(), Config::default()).await;
        task::spawn(client.run());
        task::spawn(server.run());
        let (bulk, server_bulk) = announced_stream(&client, &server).await;
        let (mut small, server_small) = announced_stream(&client, &server).await;
        let (bulk_send, _bulk_recv) = bulk.into_split();
        let writer = task::spawn(write_bulk_forever(bulk_send));

        // Each answered request lets the bulk reader take one step.
        let (step, mut steps) = futures::channel::mpsc::unbounded::<()>();
        let (_, mut bulk_recv) = server_bulk.into_split();
        let bulk_reader = async move {
            let mut offset = 0u64;
            let mut progress = Vec::with_capacity(ROUNDS);
            let mut buf = vec![0u8; PER_ROUND];
            while steps.next().await.is_some() {
                bulk_recv.read_exact(&mut buf).await.expect("bulk read");
                check_bulk(&buf, offset);
                offset += PER_ROUND as u64;
                progress.push(offset);
            }
            (progress, bulk_recv)
        };
        let server_side = answer(server_small, ROUNDS, move |_| {
            step.unbounded_send(()).expect("the bulk reader runs");
        });
        let client_side = async {
            for round in 0..ROUNDS {
                round_trip(&mut small, round).await;
            }
        };
        let ((), (progress, mut bulk_recv), ()) =
            futures::join!(server_side, bulk_reader, client_side);

        // The bulk moved exactly at the reader's pace, one step per request, every byte intact.
        let expected: Vec<u64> = (1..=ROUNDS as u64)
            .map(|round| round * PER_ROUND as u64)
            .collect();
        assert_eq!(progress, expected);
        bulk_recv.stop(ErrorCode(1)).expect("stop the bulk");
        within("the bulk writer ends", writer).await;
    })
    .await;
}

/// A server that grants far more credit than the socket buffers hold: the bulk writer's only
/// limit is the socket, so its send buffer stays full.
fn generous() -> Config {
    const BIG: u32 = 16 << 20;
    Config::default()
        .initial_window(BIG)
        .window(BIG)
        .receive_budget(4 * BIG as u64)
}

/// Writes the bulk pattern from `offset` until a write has to wait: the stream's send buffer is
/// full, holding more than the socket takes. Returns the new offset.
async fn fill_bulk(send: &mut SendStream, mut offset: u64) -> u64 {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        fill_pattern(&mut chunk, offset);
        let mut write = send.write(&chunk);
        match futures::poll!(&mut write) {
            Poll::Ready(written) => offset += written.expect("bulk write") as u64,
            Poll::Pending => return offset,
        }
    }
}

/// Reads the bulk as fast as it comes, checking every byte, until it ends or is stopped.
async fn read_bulk_fast(mut recv: RecvStream) -> u64 {
    let mut offset = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(0) | Err(_) => return offset,
            Ok(n) => {
                check_bulk(&buf[..n], offset);
                offset += n as u64;
            }
        }
    }
}

/// The `@matrixai/ws` DATA message of stream `id` carrying `payload`: the stream id (a one-byte
/// varint for ids below 64), the message type 0 (DATA, two bytes), the payload.
fn data_message(id: u64, payload: &[u8]) -> Vec<u8> {
    assert!(id < 64, "a one-byte varint");
    [&[id as u8, 0, 0][..], payload].concat()
}

/// A fast bulk reader, and the order of what leaves the client. The client has no driver: every
/// message it sends leaves during one of this task's calls, so the order of the calls and the
/// order on the wire (recorded by the proxy) can be compared exactly. Before each request the
/// bulk stream's send buffer is filled — it has more to send than the socket takes — and the
/// request must leave within one bulk message of being written: equal priorities take turns, one
/// message each. A scheduler that let the bulk go first would send its whole buffer ahead.
#[async_std::test]
async fn a_request_leaves_within_one_message_of_a_saturated_bulk_stream() {
    const ROUNDS: usize = 50;
    within("fast bulk reader", async {
        let mut rig = Rig::new().await;
        rig.proxy.set_plan(Plan::record());
        let (client, server, link) = rig.conn_pair(Config::default(), generous()).await;
        task::spawn(server.run());
        let (bulk, server_bulk) = announced_stream(&client, &server).await;
        let (mut small, server_small) = announced_stream(&client, &server).await;
        let (mut bulk_send, _bulk_recv) = bulk.into_split();
        let (_, bulk_recv) = server_bulk.into_split();
        let bulk_reader = task::spawn(read_bulk_fast(bulk_recv));
        let answering = task::spawn(answer(server_small, ROUNDS, |_| {}));

        // How many messages the client had sent when each request was written.
        let mut sent_before = Vec::with_capacity(ROUNDS);
        let mut offset = 0;
        for round in 0..ROUNDS {
            offset = fill_bulk(&mut bulk_send, offset).await;
            sent_before.push(client.stats().messages_sent);
            round_trip(&mut small, round).await;
        }
        answering.await;
        // The bulk ends; its reader has checked every byte of it.
        bulk_send.close().await.expect("the bulk's FIN");
        let bulk_read = within("the bulk is read", bulk_reader).await;
        assert_eq!(bulk_read, offset, "bulk bytes read");

        // On the wire, the client's binary messages in the order they left — the order the
        // client's counter counts them in.
        let up = Transcript::parse(&link.transcript(Dir::Up));
        let sent: Vec<&[u8]> = up
            .frames
            .iter()
            .filter(|frame| frame.opcode == wire::BINARY)
            .map(|frame| frame.payload.as_slice())
            .collect();
        let small_id = small.id().0;
        for (round, &before) in sent_before.iter().enumerate() {
            let message = data_message(small_id, &request(round));
            let Some(at) = sent.iter().position(|sent| *sent == message) else {
                panic!("round {round}: the request is not on the wire");
            };
            let ahead = at as u64 - before;
            assert!(
                ahead <= 1,
                "round {round}: {ahead} messages left between the request's write and the request"
            );
        }
    })
    .await;
}
