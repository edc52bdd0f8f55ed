// A peer built on @moq/qmux 0.3.3 (QMux over WebSocket, TypeScript) that plays the Node side of
// one case of tests/interop_moq.rs.
//
//   node peer.mjs <server|client> <case> [port]
//
// A server listens on 127.0.0.1 with an OS-chosen port and prints `listening <port>` on stdout; a
// client dials ws://127.0.0.1:<port>/. The process exits 0 only when its part of the case went
// exactly as expected; it logs every step on stderr, which the Rust test prints on failure.
// The packages come from MOQ_NODE_MODULES (default: target/interop-moq/node_modules, where
// .ci/setup/31-moq.sh installs them). The cases are described in README.md.

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// Node 20 has no Promise.withResolvers, which both @moq packages call for every session and
// socket (Node 22 and current browsers have it).
if (!Promise.withResolvers) {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

// The packages live outside this directory, and bare ES imports ignore NODE_PATH: resolve them
// from the install directory and import them by path.
const modules =
  process.env.MOQ_NODE_MODULES ??
  fileURLToPath(new URL("../../target/interop-moq/node_modules/", import.meta.url));
const resolver = createRequire(join(dirname(modules), "package.json"));
const load = async (name) => import(pathToFileURL(resolver.resolve(name)).href);
const { default: Session, StreamError, selectSubprotocol } = await load("@moq/qmux");
const { default: WebSocket } = await load("ws");
// @moq/qmux's client dials through the global WebSocket, which Node 20 lacks.
globalThis.WebSocket = WebSocket;

const [role, caseName, port] = process.argv.slice(2);
const started = Date.now();
let currentStep = "start";

function log(line) {
  process.stderr.write(`[moq ${role} ${caseName} +${Date.now() - started}ms] ${line}\n`);
}

function step(name) {
  currentStep = name;
  log(name);
}

class Failure extends Error {}

function check(condition, why) {
  if (!condition) throw new Failure(why);
}

// Our own limit, below the Rust side's, so that a hang says what it was waiting for.
const LIMIT_MS = Number(process.env.MOQ_PEER_TIMEOUT_MS ?? 40_000);
setTimeout(() => {
  log(`FAILED: still waiting after ${LIMIT_MS} ms at: ${currentStep}`);
  process.exit(2);
}, LIMIT_MS).unref();

// ----- data -----

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (s) => encoder.encode(s);

/** `len` bytes of xorshift32 output seeded by `seed`; the Rust side computes the same bytes. */
function pattern(seed, len) {
  let x = (Math.imul(seed, 0x9e3779b1) + 1) >>> 0;
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describeDifference(got, want) {
  if (got.length !== want.length) return `${got.length} bytes instead of ${want.length}`;
  const at = got.findIndex((byte, i) => byte !== want[i]);
  return `byte ${at} is ${got[at]}, not ${want[at]}`;
}

// ----- streams -----

/** Reads a WHATWG readable (a QMux receive stream) to its end (FIN). */
async function readAll(readable) {
  const reader = readable.getReader();
  const chunks = [];
  let length = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.byteLength;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** Reads exactly `length` bytes from `reader` (more in the same chunk is a failure). */
async function readExactly(reader, length, what) {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const { value, done } = await reader.read();
    check(!done, `${what}: the stream ended after ${filled} of ${length} bytes`);
    check(filled + value.byteLength <= length, `${what}: more than ${length} bytes`);
    out.set(value, filled);
    filled += value.byteLength;
  }
  return out;
}

/** Writes `bytes` and finishes (FIN) the stream. */
async function writeAll(writable, bytes) {
  const writer = writable.getWriter();
  await writer.write(bytes);
  await writer.close();
}

/** Awaits `promise`, which must fail with a stream error (reset or stop) carrying `code`. */
async function expectStreamCode(promise, code, what) {
  try {
    await promise;
  } catch (err) {
    check(
      err?.streamErrorCode === code,
      `${what}: failed with ${err} (code ${err?.streamErrorCode}), not stream code ${code}`,
    );
    return;
  }
  throw new Failure(`${what}: succeeded; expected stream code ${code}`);
}

async function nextStream(reader, what) {
  const { value, done } = await reader.read();
  check(!done, `${what}: the session ended before the stream came`);
  return value;
}

/** Opens a bidirectional stream, writes `pattern(seed, length)` and FIN, and checks the echo. */
async function roundTrip(session, seed, length) {
  const stream = await session.createBidirectionalStream();
  const data = pattern(seed, length);
  const [, back] = await Promise.all([writeAll(stream.writable, data), readAll(stream.readable)]);
  check(sameBytes(back, data), `echo of stream ${seed}: ${describeDifference(back, data)}`);
}

/**
 * Echoes every bidirectional stream the Rust side opens: reads it to its FIN, then writes it back
 * and finishes. `echoed(n)` resolves once exactly `n` streams have been echoed in full.
 *
 * Store and forward, not a pipe: an echo that reads only as fast as it can write back ties the
 * two directions' flow control together, and with small windows (`window`) the echoes of both
 * sides can fill both connection windows with data that waits for each other.
 */
function echoIncoming(session) {
  const reader = session.incomingBidirectionalStreams.getReader();
  const echoes = [];
  let accepted = Promise.withResolvers();
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const echo = readAll(value.readable).then((data) => writeAll(value.writable, data));
      // Checked in `echoed`; this keeps an early failure from being an unhandled rejection.
      echo.catch(() => {});
      echoes.push(echo);
      accepted.resolve();
      accepted = Promise.withResolvers();
    }
  })()
    .catch(() => {})
    .finally(() => {
      // The session ended: a wait for more streams fails now rather than at the time limit.
      accepted.reject(new Failure(`the session ended after ${echoes.length} streams to echo`));
      accepted.promise.catch(() => {});
    });
  return {
    async echoed(count) {
      while (echoes.length < count) await accepted.promise;
      await Promise.all(echoes);
      check(echoes.length === count, `${echoes.length} streams echoed, not ${count}`);
    },
  };
}

// ----- cases -----

const APP = "interop";
const ONE = 300_000;
const MANY = 100;
const SMALL_WINDOWS = {
  maxData: 4096n,
  maxStreamDataBidiLocal: 1024n,
  maxStreamDataBidiRemote: 1024n,
  maxStreamDataUni: 1024n,
};
const CODES_WINDOWS = {
  maxData: 8192n,
  maxStreamDataBidiLocal: 8192n,
  maxStreamDataBidiRemote: 8192n,
  maxStreamDataUni: 8192n,
};
const IDLE_TIMEOUT = { maxIdleTimeout: 1500n };
const UNI = 200_000;
const MAX_DATAGRAM = 16_379;

/**
 * Each case: the @moq/qmux config, the QMux versions it offers or accepts (default -02, -01), its
 * part, and how the session must end: `done` (the usual end: a uni stream saying "done" once this
 * part passed, then the Rust side closes with code 0 and "done"), `closes` (the part closes or
 * sees the close itself), or `violation` (the Rust side is a raw WebSocket that breaks the rules;
 * `closed` must reject with `message`).
 */
const cases = {
  // An empty stream each way, one stream each way, then a hundred concurrent ones each way;
  // every opener checks its echo. The echoer writes after the opener's FIN, so each stream
  // half-closes both ways.
  echo: {
    end: "done",
    async part(session) {
      const echo = echoIncoming(session);
      step("an empty stream (its first frame is the FIN)");
      await roundTrip(session, 3, 0);
      step("one stream");
      await roundTrip(session, 1, ONE);
      step(`${MANY} concurrent streams`);
      await Promise.all(
        Array.from({ length: MANY }, (_, i) => roundTrip(session, 300 + i, 10_000 + i * 89)),
      );
      step("our echoes of the Rust side's streams");
      await echo.echoed(2 + MANY);
    },
  },

  // 1 KiB stream windows and a 4 KiB connection window on both sides, four 64 KiB echoes each
  // way at once: each writer waits for credit, and nobody sends beyond it (the receiver would
  // close the session with a flow control error).
  window: {
    config: SMALL_WINDOWS,
    end: "done",
    async part(session) {
      const echo = echoIncoming(session);
      step("four echoes through small windows");
      await Promise.all([0, 1, 2, 3].map((i) => roundTrip(session, 500 + i, 65_536)));
      await echo.echoed(4);
    },
  },

  // Two streams of each kind at once on both sides (`maxStreams*` here, `max_streams` and
  // `max_uni_streams` there): ten concurrent echoes and four uni streams each way, each opener
  // waiting for the other's MAX_STREAMS as streams end. A stream over the limit would be a
  // connection error at the receiver.
  limits: {
    config: { maxStreamsBidi: 2n, maxStreamsUni: 2n },
    end: "done",
    async part(session) {
      const echo = echoIncoming(session);
      const incoming = session.incomingUnidirectionalStreams.getReader();
      step("ten echoes and four uni streams each way");
      const received = new Set();
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => roundTrip(session, 900 + i, 1000 + i)),
        ...Array.from({ length: 4 }, async (_, i) => {
          await writeAll(await session.createUnidirectionalStream(), pattern(950 + i, 1000 + i));
        }),
        (async () => {
          // Streams opened concurrently get their ids in no set order: the length says which.
          for (let n = 0; n < 4; n++) {
            const got = await readAll(await nextStream(incoming, `their uni stream ${n}`));
            const i = got.length - 2000;
            check(i >= 0 && i < 4 && !received.has(i), `a uni stream of ${got.length} bytes`);
            const want = pattern(960 + i, 2000 + i);
            check(sameBytes(got, want), `their uni stream ${i}: ${describeDifference(got, want)}`);
            received.add(i);
          }
        })(),
      ]);
      await echo.echoed(10);
    },
  },

  // Draft -01, when it is all this side offers or accepts: an echo each way.
  v01: {
    versions: ["qmux-01"],
    end: "done",
    async part(session) {
      const echo = echoIncoming(session);
      step("an echo each way over qmux-01");
      await roundTrip(session, 70, 50_000);
      await echo.echoed(1);
    },
  },

  // Resets and stops each way, in this order: the Rust side resets (4001); we stop (4002); we
  // reset (4003); the Rust side stops (4004). Windows of 8 KiB on both sides; the stream the Rust
  // side stops has just used up its connection window. Then a 64 KiB echo each way, which stalls
  // if either side still counts a byte of the reset or stopped streams against its window.
  codes: {
    config: CODES_WINDOWS,
    end: "done",
    async part(session) {
      const incoming = session.incomingBidirectionalStreams.getReader();
      step("their reset reaches our reader");
      const a = await nextStream(incoming, "stream A");
      await expectStreamCode(readAll(a.readable), 4001, "reading stream A");

      step("our stop reaches their writer");
      const b = await nextStream(incoming, "stream B");
      await b.readable.cancel(new StreamError(4002));

      step("our reset reaches their reader");
      const c = await session.createBidirectionalStream();
      const cw = c.writable.getWriter();
      // write() resolves once the bytes are on the socket, so the reset cannot overtake them.
      await cw.write(text("abc"));
      await cw.abort(new StreamError(4003));

      step("their stop reaches our writer");
      const d = await session.createBidirectionalStream();
      const dw = d.writable.getWriter();
      await dw.write(text("abc"));
      // What is left of their 8 KiB connection window after C's 3 bytes, which they have not
      // granted back yet (that takes half a window): not one byte more. A write that waits for
      // credit when their stop comes would later cross the final size of our reset
      // (`past_final_size`).
      try {
        for (let sent = 3; sent < 8192 - 3; sent += 1024) {
          await dw.write(new Uint8Array(Math.min(1024, 8192 - 3 - sent)));
        }
      } catch (err) {
        check(err?.streamErrorCode === 4004, `writing stream D failed with ${err}`);
      }
      await expectStreamCode(dw.closed, 4004, "stream D, stopped");
      await expectStreamCode(dw.write(text("more")), 4004, "writing stream D after the stop");

      step("a 64 KiB echo each way through the same windows");
      const echo = (async () => {
        const stream = await nextStream(incoming, "their echo stream");
        await writeAll(stream.writable, await readAll(stream.readable));
      })();
      await Promise.all([roundTrip(session, 80, 65_536), echo]);
    },
  },

  // A write of ours that waits for connection credit when the Rust side stops the stream: we
  // answer the stop with RESET_STREAM (final size: the bytes sent), and once the Rust side's
  // MAX_DATA comes (stopping, it counted the bytes it dropped as read), the waiting write still
  // goes out, past that final size. The Rust side closes the session with FINAL_SIZE_ERROR (6).
  past_final_size: {
    end: "closes",
    async part(session, closed) {
      step("fill their connection window");
      const stream = await session.createBidirectionalStream();
      const writer = stream.writable.getWriter();
      await writer.write(pattern(90, 8192));
      // Datagrams are not flow-controlled: this tells them the window is full.
      await session.datagrams.writable.getWriter().write(text("full"));
      step("a write that waits for credit");
      const late = writer.write(text("late"));
      await expectStreamCode(writer.closed, 4004, "the stream, stopped");
      // The stream was stopped, yet the write that waited reports success: it went out.
      await late;
      step("their FINAL_SIZE_ERROR");
      try {
        const info = await closed;
        throw new Failure(`closed cleanly with ${JSON.stringify(info)}`);
      } catch (err) {
        if (err instanceof Failure) throw err;
        const want = "Connection closed: 6 data beyond the stream's final size";
        check(err.message === want, `closed with ${JSON.stringify(err.message)}`);
      }
    },
  },

  // A uni stream each way (ours after theirs), content checked by each receiver.
  uni: {
    end: "done",
    async part(session) {
      step("their uni stream");
      const incoming = session.incomingUnidirectionalStreams.getReader();
      const got = await readAll(await nextStream(incoming, "their uni stream"));
      const want = pattern(11, UNI);
      check(sameBytes(got, want), `their uni stream: ${describeDifference(got, want)}`);
      step("our uni stream");
      await writeAll(await session.createUnidirectionalStream(), pattern(12, UNI));
    },
  },

  // Datagrams each way, a short one and one of the largest size each side allows, taking turns:
  // theirs, ours, theirs, ours. A stream round trip first: @moq/qmux drops datagrams written
  // before the peer's parameters arrived. Taking turns, because @moq/qmux also drops a datagram
  // written while its previous write to the socket is still under way (README.md).
  datagram: {
    end: "done",
    async part(session) {
      step("a round trip, so that both sides have the other's parameters");
      const incoming = session.incomingBidirectionalStreams.getReader();
      const stream = await nextStream(incoming, "first stream");
      await writeAll(stream.writable, await readAll(stream.readable));
      check(
        session.datagrams.maxDatagramSize === MAX_DATAGRAM,
        `maxDatagramSize is ${session.datagrams.maxDatagramSize}, not ${MAX_DATAGRAM}`,
      );
      const reader = session.datagrams.readable.getReader();
      const writer = session.datagrams.writable.getWriter();
      for (const [what, theirs, ours] of [
        ["short", text("ours"), text("theirs")],
        ["largest", pattern(21, MAX_DATAGRAM), pattern(22, MAX_DATAGRAM)],
      ]) {
        step(`their ${what} datagram`);
        const { value, done } = await reader.read();
        check(!done, `the datagrams ended before the ${what} one`);
        const why = `their ${what} datagram: ${describeDifference(value, theirs)}`;
        check(sameBytes(value, theirs), why);
        step(`our ${what} datagram`);
        await writer.write(ours);
      }
    },
  },

  // The Rust side closes with 42 while we wait in a read: the read fails, `closed` fulfils with
  // the code and reason.
  close_by_rust: {
    end: "closes",
    async part(session, closed) {
      step("a stream to wait on");
      const stream = await nextStream(session.incomingBidirectionalStreams.getReader(), "stream");
      const reader = stream.readable.getReader();
      const got = decoder.decode(await readExactly(reader, 7, "stream"));
      check(got === "pending", `read ${JSON.stringify(got)}, not "pending"`);
      await stream.writable.getWriter().write(text("reading"));
      step("a read pending when the close comes");
      try {
        const { done } = await reader.read();
        throw new Failure(`the pending read ended with done=${done} instead of failing`);
      } catch (err) {
        if (err instanceof Failure) throw err;
        check(
          err.message === "Connection closed: 42 interop complete",
          `the pending read failed with ${err}`,
        );
      }
      const info = await closed;
      check(
        info.closeCode === 42 && info.reason === "interop complete",
        `closed with ${JSON.stringify(info)}`,
      );
    },
  },

  // We close with 43 "bye" while the Rust side waits in a read.
  close_by_moq: {
    end: "closes",
    async part(session, closed) {
      step("a stream the Rust side waits on");
      const stream = await session.createBidirectionalStream();
      await stream.writable.getWriter().write(text("pending"));
      const got = decoder.decode(await readExactly(stream.readable.getReader(), 7, "stream"));
      check(got === "reading", `read ${JSON.stringify(got)}, not "reading"`);
      step("close");
      session.close({ closeCode: 43, reason: "bye" });
      const info = await closed;
      check(info.closeCode === 43 && info.reason === "bye", `closed with ${JSON.stringify(info)}`);
    },
  },

  // An idle timeout of 1.5 s (ours; the Rust side advertises none): @moq/qmux closes a session
  // it has not heard from for that long. The Rust side stays quiet for several timeouts, then
  // opens a stream; by then the session must still be open.
  idle: {
    config: IDLE_TIMEOUT,
    end: "done",
    async part(session, closed) {
      let settled = false;
      closed.then(
        () => (settled = true),
        () => (settled = true),
      );
      step("waiting through the quiet time for their stream");
      const stream = await nextStream(session.incomingBidirectionalStreams.getReader(), "stream");
      check(!settled, "the session closed during the quiet time");
      await writeAll(stream.writable, await readAll(stream.readable));
    },
  },

  // The raw peer sends a text message.
  raw_text: {
    end: "violation",
    message: "Connection closed: 1003 text frames are not valid for QMux",
  },
  // The raw peer sends a STREAM frame before its transport parameters.
  raw_stream_first: {
    end: "violation",
    message: "QX_TRANSPORT_PARAMETERS must be the first frame",
  },
  // The raw peer sends a record one byte over max_record_size.
  raw_big_record: {
    end: "violation",
    message: "record exceeds our max_record_size (16383 > 16382)",
  },
};

// ----- the session -----

/** Serves one WebSocket connection on 127.0.0.1, choosing the subprotocol as @moq/qmux does. */
function serve(protocols, config) {
  return new Promise((resolve, reject) => {
    const server = new WebSocket.WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      handleProtocols: (offered) => selectSubprotocol([...offered], protocols) ?? false,
    });
    server.on("listening", () => console.log(`listening ${server.address().port}`));
    server.on("error", reject);
    server.on("connection", (socket) => {
      // One connection per run: stop listening (the accepted socket stays open).
      server.close();
      // Adopt it at once: messages that arrive before are lost.
      resolve(Session.accept(socket, { config }));
    });
  });
}

async function main() {
  const spec = cases[caseName];
  check(spec !== undefined, `unknown case ${caseName}`);
  const config = spec.config ?? {};
  const versions = spec.versions ?? ["qmux-02", "qmux-01"];
  const protocols = { protocols: [APP], versions: { [APP]: versions } };
  step(`${role}: connecting`);
  const session =
    role === "server"
      ? await serve(protocols, config)
      : new Session(`ws://127.0.0.1:${port}/`, { ...protocols, config });
  await session.ready;
  check(session.protocol === APP, `negotiated application ${JSON.stringify(session.protocol)}`);

  if (spec.end === "violation") {
    step("waiting for the raw peer's violation");
    try {
      const info = await session.closed;
      throw new Failure(`closed cleanly with ${JSON.stringify(info)}`);
    } catch (err) {
      if (err instanceof Failure) throw err;
      check(err.name === "WebTransportError" && err.source === "session", `closed with ${err}`);
      check(err.message === spec.message, `closed with ${JSON.stringify(err.message)}`);
    }
    return;
  }

  await spec.part(session, session.closed);
  if (spec.end === "done") {
    step("done");
    await writeAll(await session.createUnidirectionalStream(), text("done"));
    const info = await session.closed;
    check(info.closeCode === 0 && info.reason === "done", `closed with ${JSON.stringify(info)}`);
  }
}

main().then(
  () => {
    log("PASSED");
    // Exit once the socket has closed. If something still holds the event loop, a passed part
    // still exits (this timer does not hold the loop itself).
    setTimeout(() => process.exit(0), 2_000).unref();
  },
  (err) => {
    log(`FAILED at ${currentStep}: ${err instanceof Failure ? err.message : err?.stack ?? err}`);
    process.exit(1);
  },
);
