'use strict';
// A peer built on @matrixai/ws that plays one part of one interop case.
//
//   node peer.js <server|client> <case> <part> [port] [--strict]
//
// A server listens on 127.0.0.1 with an OS-chosen port and prints `listening <port>` on stdout;
// a client connects to <port>. TLS material comes from INTEROP_CERT_PEM / INTEROP_KEY_PEM.
// The process exits 0 when its part of the case went exactly as expected, non-zero otherwise.
// `--strict` makes it also check every message the other side sends against WIRE.md (used when
// the other side is the Rust implementation). See README.md for the cases.

const {
  CodeReason,
  Peer,
  check,
  codeOf,
  connect,
  echo,
  echoCheck,
  expectCode,
  fail,
  log,
  pattern,
  readAll,
  serve,
  writeAll,
} = require('./lib');

const RESET = 4001;
const STOP = 4002;
const CLOSE = 4000;
const CLOSE_REASON = 'bye from the closer';
const text = (s) => Buffer.from(s, 'utf8');

/** Reads the stream to its end and checks the bytes. */
async function expectText(stream, want, what) {
  const got = (await readAll(stream)).toString('utf8');
  check(got === want, `${what}: expected ${JSON.stringify(want)}, read ${JSON.stringify(got)}`);
}

/**
 * The end of every case but `close`: the accepting part opens a last stream that says "done" once
 * all of its checks passed; the opening part reads it and closes the connection with 1000. So no
 * side closes while the other still checks something.
 */
async function finishOpener(peer) {
  const done = await peer.accept();
  await expectText(done, 'done', 'final stream');
  await peer.conn.stop({ errorCode: 1000, reason: 'done', force: true });
  await expectClose(peer, 'local', 1000, 'done');
}

async function finishAcceptor(peer) {
  const done = await peer.conn.newStream();
  await writeAll(done, text('done'));
  await expectClose(peer, 'peer', 1000, 'done');
}

async function expectClose(peer, by, code, reason) {
  const info = await peer.closed;
  check(info != null, 'the connection closed without an error event');
  check(
    info.by === by && info.code === code && info.reason === reason,
    `expected the connection to be closed by ${by} with ${code} ${JSON.stringify(reason)}, got ${JSON.stringify(info)}`,
  );
}

/** Accepts `count` streams and runs `handler(stream, index)` on each, all concurrently. */
async function acceptEach(peer, count, handler) {
  const tasks = [];
  for (let i = 0; i < count; i++) {
    const stream = await peer.accept();
    tasks.push(handler(stream, i));
  }
  await Promise.all(tasks);
}

const CONCURRENT = 100;
const BULK = 1024 * 1024;
const SMALL_WINDOW_STREAMS = 4;
const SMALL_WINDOW_BYTES = 4096;
const LATE_BYTES = 64 * 1024;

const cases = {
  // One echo, then 100 concurrent streams of 1 MiB each, content checked by the opener.
  echo: {
    async open(peer) {
      await echoCheck(await peer.conn.newStream(), text('hello interop'), 'first echo');
      const tasks = [];
      for (let i = 0; i < CONCURRENT; i++) {
        const stream = await peer.conn.newStream();
        tasks.push(echoCheck(stream, pattern(i, BULK), `bulk stream ${i}`));
      }
      await Promise.all(tasks);
      await finishOpener(peer);
    },
    async accept(peer) {
      await acceptEach(peer, 1 + CONCURRENT, echo);
      await finishAcceptor(peer);
    },
  },

  // Both sides grant 16-byte windows: every writer must chunk to its credit; the JS side drops
  // what exceeds its buffer, so anything sent beyond the credit shows up as a broken echo (and
  // the strict checker flags it directly).
  window: {
    config: { streamBufferSize: 16 },
    async open(peer) {
      const tasks = [];
      for (let i = 0; i < SMALL_WINDOW_STREAMS; i++) {
        const stream = await peer.conn.newStream();
        tasks.push(echoCheck(stream, pattern(100 + i, SMALL_WINDOW_BYTES), `window stream ${i}`));
      }
      await Promise.all(tasks);
      await finishOpener(peer);
    },
    async accept(peer) {
      await acceptEach(peer, SMALL_WINDOW_STREAMS, echo);
      await finishAcceptor(peer);
    },
  },

  // Graceful half-close each way. Stream 0: the opener finishes first, the acceptor answers
  // after reading the end. Stream 1: the acceptor finishes first, the opener answers after.
  halfclose: {
    async open(peer) {
      const a = await peer.conn.newStream();
      await writeAll(a, text('opener writes, then finishes'));
      await expectText(a, 'acceptor answers after the end', 'stream 0');
      const b = await peer.conn.newStream();
      await expectText(b, 'acceptor writes, then finishes', 'stream 1');
      await writeAll(b, text('opener answers after the end'));
      await finishOpener(peer);
    },
    async accept(peer) {
      await acceptEach(peer, 2, async (s, i) => {
        if (i === 0) {
          await expectText(s, 'opener writes, then finishes', 'stream 0');
          await writeAll(s, text('acceptor answers after the end'));
        } else {
          await writeAll(s, text('acceptor writes, then finishes'));
          await expectText(s, 'opener answers after the end', 'stream 1');
        }
      });
      await finishAcceptor(peer);
    },
  },

  // Reset (abort writing, 4001) and stop (cancel reading, 4002) each way, one stream each:
  //   0: opener resets    1: acceptor resets    2: opener stops    3: acceptor stops.
  // Stops happen before any data flows towards the stopping side: @matrixai/ws closes the whole
  // connection (1002) when DATA arrives for a readable it cancelled. See `stopwrite` for a stop
  // while the peer writes.
  reset: {
    async open(peer) {
      const s0 = await peer.conn.newStream();
      await resetAfter(s0, 'opener data before reset');
      await expectText(s0, 'acceptor saw the reset', 'stream 0');

      const s1 = await peer.conn.newStream();
      await expectCode(readAll(s1), RESET, 'stream 1 read after the acceptor reset');
      await writeAll(s1, text('opener saw the reset'));

      const s2 = await peer.conn.newStream();
      await s2.readable.cancel(new CodeReason('read', STOP));
      await writeAll(s2, text('opener stopped reading'));

      const s3 = await peer.conn.newStream();
      await expectText(s3, 'acceptor stopped reading', 'stream 3');
      await expectStopped(s3, 'stream 3');
      await finishOpener(peer);
    },
    async accept(peer) {
      await acceptEach(peer, 4, async (s, i) => {
        if (i === 0) {
          await expectCode(readAll(s), RESET, 'stream 0 read after the opener reset');
          await writeAll(s, text('acceptor saw the reset'));
        } else if (i === 1) {
          await resetAfter(s, 'acceptor data before reset');
          await expectText(s, 'opener saw the reset', 'stream 1');
        } else if (i === 2) {
          await expectText(s, 'opener stopped reading', 'stream 2');
          await expectStopped(s, 'stream 2');
        } else {
          await s.readable.cancel(new CodeReason('read', STOP));
          await writeAll(s, text('acceptor stopped reading'));
        }
      });
      await finishAcceptor(peer);
    },
  },

  // The opener writes until its writes fail with 4002; the acceptor stops reading while data is
  // still arriving. Only the Rust side plays `stop`: @matrixai/ws itself cannot (see `reset`).
  stopwrite: {
    async open(peer) {
      const s = await peer.conn.newStream();
      const writer = s.writable.getWriter();
      const chunk = pattern(7, 1024);
      let written = 0;
      try {
        for (;;) {
          await writer.write(chunk);
          written += chunk.length;
          check(written <= 64 * 1024 * 1024, 'wrote 64 MiB and was never stopped');
        }
      } catch (e) {
        check(codeOf(e) === STOP, `write after the stop: expected code ${STOP}, got ${codeOf(e)}`);
      }
      log(`stopped after writing ${written} bytes`);
      writer.releaseLock();
      await expectText(s, 'acceptor stopped reading', 'stopped stream');
      await finishOpener(peer);
    },
    // What the Rust side does; kept to show the @matrixai/ws bug (JS <-> JS fails with 1002).
    async stop(peer) {
      await acceptEach(peer, 1, async (s) => {
        const reader = s.readable.getReader();
        await reader.read();
        await reader.cancel(new CodeReason('read', STOP));
        await writeAll(s, text('acceptor stopped reading'));
      });
      await finishAcceptor(peer);
    },
  },

  // Connection close with 4000 and a reason. The closer echoes on one stream, opens a second
  // stream and waits for the other side's first byte on it, then closes. The other side sees
  // the code and reason on the connection and on the read it had pending.
  close: {
    async open(peer) {
      await echoCheck(await peer.conn.newStream(), text('before the close'), 'echo');
      const s = await peer.conn.newStream();
      const reader = s.readable.getReader();
      const { value } = await reader.read();
      check(value && Buffer.from(value).toString() === 'r', 'expected the ready byte');
      await peer.conn.stop({ errorCode: CLOSE, reason: CLOSE_REASON, force: true });
      await expectClose(peer, 'local', CLOSE, CLOSE_REASON);
    },
    async accept(peer) {
      await echo(await peer.accept());
      const s = await peer.accept();
      const writer = s.writable.getWriter();
      await writer.write(text('r'));
      try {
        await readAll(s);
        fail('the read on the open stream ended without an error when the connection closed');
      } catch (e) {
        const code = e && e.data && e.data.errorCode;
        check(code === CLOSE, `pending read: expected connection code ${CLOSE}, got ${e}`);
      }
      await expectClose(peer, 'peer', CLOSE, CLOSE_REASON);
    },
  },

  // The JS side pings every 50 ms and gives up on a silent peer after 2 s; it waits for 60 pongs
  // (3 s), so an idle peer that did not answer pings would have been dropped.
  keepalive: {
    config: { keepAliveIntervalTime: 50, keepAliveTimeoutTime: 2000 },
    async open(peer) {
      await new Promise((resolve) => {
        const timer = setInterval(() => {
          if (peer.pongs >= 60) {
            clearInterval(timer);
            resolve();
          }
        }, 50);
      });
      check(peer.closeInfo == null, `closed during keep-alive: ${JSON.stringify(peer.closeInfo)}`);
      await echoCheck(await peer.conn.newStream(), text('still alive'), 'echo after idling');
      await finishOpener(peer);
    },
    async accept(peer) {
      await acceptEach(peer, 1, echo);
      await finishAcceptor(peer);
    },
  },

  // Late messages for a half that already ended: after its data and FIN, this side sends an
  // ERROR Read and a CLOSE Write on the same stream, as @matrixai/ws does when it answers late
  // messages (the mirror replies of a stream it re-created). The other side has not read the
  // data yet; it must still read all of it, then the end (WIRE.md: a message for a half that has
  // ended is ignored). A second stream says when the late messages are out.
  lateerror: {
    async open(peer) {
      const s = await peer.conn.newStream();
      await writeAll(s, pattern(9, LATE_BYTES));
      await peer.sendRaw(s.streamId, ERROR, { shutdown: 0, code: 7n });
      await peer.sendRaw(s.streamId, CLOSE_MSG, 1);
      await writeAll(await peer.conn.newStream(), text('late messages sent'));
      await finishOpener(peer);
    },
    // @matrixai/ws itself ignores them (its JS <-> JS control).
    async accept(peer) {
      const s = await peer.accept();
      await expectText(await peer.accept(), 'late messages sent', 'signal stream');
      const data = await readAll(s);
      check(Buffer.compare(data, pattern(9, LATE_BYTES)) === 0, `read ${data.length} bytes`);
      await finishAcceptor(peer);
    },
  },

  // Messages @matrixai/ws is known to send that a strict peer must tolerate: an ACK of 0 (it
  // answers an empty DATA so), an empty DATA (its writer sends one when an ACK of 0 wakes it),
  // and ACK / CLOSE / ERROR for a stream that has already ended (its mirror-image replies and
  // per-read ACKs arrive late). They are injected raw with the library's own encoder.
  quirks: {
    // Injects on a stream it opened, then checks that a fresh stream still echoes.
    async 'inject-open'(peer) {
      const s = await peer.conn.newStream();
      const writer = s.writable.getWriter();
      await writer.write(text('a')); // resolves once the peer's ACK gave us credit
      await injectEarly(peer, s.streamId);
      await writer.write(text('fter quirks'));
      await writer.close();
      await expectText(s, 'after quirks', 'echo with quirks');
      await injectLate(peer, s.streamId);
      await echoCheck(await peer.conn.newStream(), text('still alive'), 'echo after quirks');
      await finishOpener(peer);
    },
    async 'inject-accept'(peer) {
      await acceptEach(peer, 2, async (s) => {
        await injectEarly(peer, s.streamId);
        await echo(s);
        await injectLate(peer, s.streamId);
      });
      await finishAcceptor(peer);
    },
    // The plain parts the injectors talk to.
    async open(peer) {
      await echoCheck(await peer.conn.newStream(), text('hello quirks'), 'first echo');
      await echoCheck(await peer.conn.newStream(), text('still alive'), 'second echo');
      await finishOpener(peer);
    },
    async accept(peer) {
      await acceptEach(peer, 2, echo);
      await finishAcceptor(peer);
    },
  },
};

async function resetAfter(stream, data) {
  const writer = stream.writable.getWriter();
  await writer.write(text(data));
  await writer.abort(new CodeReason('write', RESET));
}

async function expectStopped(stream, what) {
  const writer = stream.writable.getWriter();
  await expectCode(writer.write(text('must not be sent')), STOP, `${what} write after the stop`);
}

const ACK = 1;
const DATA = 0;
const ERROR = 2;
const CLOSE_MSG = 3;

async function injectEarly(peer, id) {
  await peer.sendRaw(id, ACK, 0);
  await peer.sendRaw(id, DATA, new Uint8Array(0));
}

async function injectLate(peer, id) {
  await peer.sendRaw(id, ACK, 4096);
  await peer.sendRaw(id, CLOSE_MSG, 1);
  await peer.sendRaw(id, CLOSE_MSG, 0);
  await peer.sendRaw(id, ERROR, { shutdown: 0, code: 7n });
  await peer.sendRaw(id, ERROR, { shutdown: 1, code: 7n });
}

async function main() {
  const args = process.argv.slice(2).filter((a) => a !== '--strict');
  const strict = process.argv.includes('--strict');
  const [role, caseName, part, port] = args;
  const c = cases[caseName];
  check(c != null, `unknown case ${caseName}`);
  const run = c[part];
  check(typeof run === 'function', `case ${caseName} has no part ${part}`);
  // Keep-alive settings apply to the part that measures them only.
  const config = caseName === 'keepalive' && part !== 'open' ? {} : c.config || {};
  const limit = Number(process.env.INTEROP_TIMEOUT_MS || 120000);
  setTimeout(() => fail(`${caseName}/${part} did not finish within ${limit} ms`), limit).unref();

  let endpoint;
  if (role === 'server') {
    endpoint = await serve(config);
  } else if (role === 'client') {
    check(port != null, 'a client needs the port');
    endpoint = await connect(Number(port), config);
  } else {
    fail(`role must be server or client, not ${role}`);
  }
  const peer = new Peer(endpoint.conn, { strict });
  await run(peer);
  log(`${caseName}/${part} as ${role}: ok`);
  if (endpoint.server) await endpoint.server.stop({ force: true });
  if (endpoint.client) await endpoint.client.destroy({ force: true });
  process.exit(0);
}

process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${e && e.stack ? e.stack : e}`));
process.on('uncaughtException', (e) => fail(`uncaught exception: ${e && e.stack ? e.stack : e}`));
main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
