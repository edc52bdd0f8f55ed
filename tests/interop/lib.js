'use strict';
// Shared plumbing for the interop peers: connecting, stream helpers, error codes, a wire tracer
// and a checker of what the other side sends. See README.md beside this file.

const { LogLevel, default: Logger } = require('@matrixai/logger');
const mws = require('@matrixai/ws');

const { events, message } = mws;

// A bug of @matrixai/ws 1.1.7, worked around here so that it cannot fail a test by chance: when a
// DATA and the CLOSE that ends the same stream arrive in one tick (the `ws` library emits every
// message of one TCP read synchronously), the CLOSE flushes the queue and closes the readable
// while a `readablePull` is waiting on its promise; the pull then wakes to an empty queue and
// enqueues `[]` into the closed controller, which throws ERR_INVALID_STATE and errors the stream,
// losing the data the CLOSE had just flushed. Nothing is lost when that throw is ignored: the
// readable was closed in order by the peer's CLOSE. Only that exact throw, after exactly that
// close, is ignored; anything else still fails the peer.
const readablePull = mws.WebSocketStream.prototype.readablePull;
mws.WebSocketStream.prototype.readablePull = async function readablePullPatched(controller) {
  try {
    return await readablePull.call(this, controller);
  } catch (e) {
    if (e && e.code === 'ERR_INVALID_STATE' && this._readClosed) return undefined;
    throw e;
  }
};

/** Prints why the peer failed and exits non-zero; the Rust test shows stderr. */
function fail(why) {
  process.stderr.write(`interop peer FAILED: ${why}\n`);
  process.exit(1);
}

function check(condition, why) {
  if (!condition) fail(why);
}

function log(line) {
  process.stderr.write(`[js ${process.pid}] ${line}\n`);
}

/**
 * The library maps stream errors to codes through these two callbacks. A reason is an Error that
 * carries its `code`; reasons we did not make (connection errors, internal errors) map to 0.
 */
class CodeReason extends Error {
  constructor(type, code) {
    super(`${type} ${code}`);
    this.type = type;
    this.code = code;
  }
}
const reasonToCode = (_type, reason) =>
  reason instanceof CodeReason ? reason.code : 0;
const codeToReason = (type, code) => new CodeReason(type, Number(code));

/** The stream code carried by a rejection, or a description of what it was instead. */
function codeOf(err) {
  if (err instanceof CodeReason) return err.code;
  return `not a stream code: ${err && err.constructor && err.constructor.name}: ${err && err.message}`;
}

function logger() {
  const level = process.env.INTEROP_LOG === 'debug' ? LogLevel.DEBUG : LogLevel.WARN;
  return new Logger('js-peer', level);
}

function tlsFromEnv() {
  const cert = process.env.INTEROP_CERT_PEM;
  const key = process.env.INTEROP_KEY_PEM;
  check(cert && key, 'INTEROP_CERT_PEM and INTEROP_KEY_PEM must hold the PEM texts');
  return { cert, key };
}

/** Starts a server on 127.0.0.1 with an OS-chosen port and resolves with its first connection. */
async function serve(config) {
  const { cert, key } = tlsFromEnv();
  const server = new mws.WebSocketServer({
    config: { key, cert, ...config },
    reasonToCode,
    codeToReason,
    logger: logger(),
  });
  server.addEventListener(events.EventWebSocketServerError.name, (evt) =>
    fail(`server error: ${evt.detail}`),
  );
  const connected = new Promise((resolve) => {
    server.addEventListener(
      events.EventWebSocketServerConnection.name,
      (evt) => resolve(evt.detail),
      { once: true },
    );
  });
  await server.start({ host: '127.0.0.1', port: 0 });
  // The Rust test reads this line to learn where to connect.
  process.stdout.write(`listening ${server.port}\n`);
  const conn = await connected;
  return { conn, server };
}

/** Connects to 127.0.0.1:port, verifying the server against the throw-away certificate. */
async function connect(port, config) {
  const { cert } = tlsFromEnv();
  const client = await mws.WebSocketClient.createWebSocketClient({
    host: '127.0.0.1',
    port,
    config: { verifyPeer: true, ca: cert, ...config },
    reasonToCode,
    codeToReason,
    logger: logger(),
  });
  return { conn: client.connection, client };
}

/**
 * Watches one connection: streams the peer opens (`accept()`), how the connection closed
 * (`closed`), and every message both ways for the tracer and the checker.
 */
class Peer {
  constructor(conn, { strict }) {
    this.conn = conn;
    this.strict = strict;
    this.incoming = [];
    this.phantoms = 0;
    this.isClosed = null;
    this.waiting = [];
    this.trace = process.env.INTEROP_TRACE === '1';
    this.streams = new Map(); // id -> { granted, used, finSeen } for the checker
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      conn.addEventListener(events.EventWebSocketConnectionError.name, (evt) => {
        const e = evt.detail;
        const local = e instanceof mws.errors.ErrorWebSocketConnectionLocal;
        const peer = e instanceof mws.errors.ErrorWebSocketConnectionPeer;
        if (this.closeInfo == null) {
          this.closeInfo = {
            by: local ? 'local' : peer ? 'peer' : e.constructor.name,
            code: e.data && e.data.errorCode,
            reason: e.data && e.data.reason,
          };
          log(`connection closed: ${JSON.stringify(this.closeInfo)}`);
        }
      });
      conn.socket.once('close', () => {
        // Nothing more will arrive: fail whoever still waits for a stream.
        const why = new Error(`connection closed: ${JSON.stringify(this.closeInfo)}`);
        for (const w of this.waiting.splice(0)) w.reject(why);
        this.isClosed = why;
        resolve(this.closeInfo);
      });
    });
    conn.addEventListener(events.EventWebSocketConnectionStream.name, (evt) => {
      const stream = evt.detail;
      // @matrixai/ws forgets the ids of streams it opened once they end, so a late ACK for one
      // of them "opens" it again as if the peer had: it answers with an ACK of its buffer size
      // and announces a new stream. Such a phantom has our own parity; it is not the peer's.
      const ours = conn.type === 'client' ? 0n : 1n;
      if (BigInt(stream.streamId) % 2n === ours) {
        log(`phantom stream ${stream.streamId}: a late message for a stream we opened re-created it`);
        this.phantoms++;
        return;
      }
      const w = this.waiting.shift();
      if (w) w.resolve(stream);
      else this.incoming.push(stream);
    });
    conn.socket.on('message', (data, isBinary) => this.onIncoming(data, isBinary));
    // Trace what really goes on the wire: the library drops sends once the socket is closing.
    const socketSend = conn.socket.send.bind(conn.socket);
    conn.socket.send = (data, options, cb) => {
      this.onOutgoing(data);
      return socketSend(data, options, cb);
    };
    this.pings = 0;
    this.pongs = 0;
    conn.socket.on('ping', () => this.pings++);
    conn.socket.on('pong', () => this.pongs++);
  }

  /** The next stream the peer opened. */
  accept() {
    const s = this.incoming.shift();
    if (s) return Promise.resolve(s);
    if (this.isClosed) return Promise.reject(this.isClosed);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  state(id) {
    let s = this.streams.get(id);
    if (!s) {
      s = { granted: 0, used: 0, finSeen: false };
      this.streams.set(id, s);
    }
    return s;
  }

  onOutgoing(bytes) {
    const m = describe(bytes);
    if (this.trace) log(`send ${m.text}`);
    if (m.type === 'ACK') this.state(m.id).granted += m.value;
  }

  /**
   * Checks what the other side sends. With `strict` (the peer under test is ours) it must follow
   * WIRE.md to the letter: never more DATA than the credit we granted, never empty DATA, never an
   * ACK of 0, nothing but ACK/ERROR after its FIN.
   */
  onIncoming(data, isBinary) {
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!isBinary) return this.violation(`text message of ${bytes.length} bytes`);
    const m = describe(bytes);
    if (this.trace) log(`recv ${m.text}`);
    if (m.error) return this.violation(`unparseable message ${m.text}`);
    const s = this.state(m.id);
    if (m.type === 'DATA') {
      if (m.len === 0) this.violation(`empty DATA on stream ${m.id}`);
      if (s.finSeen) this.violation(`DATA after CLOSE Read on stream ${m.id}`);
      s.used += m.len;
      if (s.used > s.granted) {
        this.violation(
          `stream ${m.id}: peer sent ${s.used} bytes but was granted only ${s.granted}`,
        );
      }
    } else if (m.type === 'ACK') {
      if (m.value === 0) this.violation(`ACK of 0 on stream ${m.id}`);
    } else if (m.type === 'CLOSE' && m.value === 0) {
      s.finSeen = true;
    }
  }

  violation(what) {
    if (this.strict) fail(`the peer broke the wire protocol: ${what}`);
    log(`peer quirk: ${what}`);
  }

  /** Sends a raw mux message, bypassing the stream state machine (to inject quirks). */
  async sendRaw(id, type, payload) {
    await this.conn.send(
      message.generateConnectionMessage({ streamId: BigInt(id), type, payload }),
    );
  }
}

const TYPES = ['DATA', 'ACK', 'ERROR', 'CLOSE'];
const HALF = ['Read', 'Write'];

/** Decodes a mux message for the tracer and the checker. */
function describe(bytes) {
  const hex = Buffer.from(bytes.subarray(0, 24)).toString('hex') + (bytes.length > 24 ? '..' : '');
  try {
    const m = message.parseConnectionMessage(bytes);
    const id = Number(m.streamId);
    const type = TYPES[m.type];
    let text;
    let value;
    let len = 0;
    if (type === 'DATA') {
      len = m.payload.length;
      text = `${id} DATA ${len}B`;
    } else if (type === 'ACK') {
      value = m.payload;
      text = `${id} ACK ${value}`;
    } else if (type === 'CLOSE') {
      value = m.payload;
      text = `${id} CLOSE ${HALF[value]}`;
    } else {
      value = m.payload.shutdown;
      text = `${id} ERROR ${HALF[value]} ${m.payload.code}`;
    }
    return { id, type, value, len, text: `${text} [${hex}]` };
  } catch (e) {
    return { error: true, text: `[${hex}] (${e.message})` };
  }
}

/** Reads a stream to its end; rejects with the reason if the read side fails. */
async function readAll(stream) {
  const reader = stream.readable.getReader();
  const chunks = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    // The library enqueues `[]` when a read is woken with nothing queued.
    if (value.length > 0) chunks.push(Buffer.from(value));
  }
  reader.releaseLock();
  return Buffer.concat(chunks);
}

/** Writes all of `data` (in chunks of at most `chunk` bytes) and finishes the write side. */
async function writeAll(stream, data, chunk = 64 * 1024) {
  const writer = stream.writable.getWriter();
  for (let off = 0; off < data.length; off += chunk) {
    await writer.write(data.subarray(off, off + chunk));
  }
  await writer.close();
}

/** Writes `data` and finishes while reading the echo, which must equal `data`. */
async function echoCheck(stream, data, what) {
  const [, echoed] = await Promise.all([writeAll(stream, data), readAll(stream)]);
  check(
    Buffer.compare(echoed, data) === 0,
    `${what}: echo differs (sent ${data.length} bytes, got ${echoed.length}, first difference at ${firstDiff(data, echoed)})`,
  );
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** Sends back everything read, then finishes. */
async function echo(stream) {
  await stream.readable.pipeTo(stream.writable);
}

/** Deterministic bytes that differ per stream (a 32-bit LCG), so mixed-up streams are caught. */
function pattern(seed, len) {
  const out = Buffer.allocUnsafe(len);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Awaits `p`, which must reject with a stream reason carrying `code`. */
async function expectCode(p, code, what) {
  try {
    await p;
  } catch (e) {
    check(codeOf(e) === code, `${what}: expected code ${code}, got ${codeOf(e)}`);
    return;
  }
  fail(`${what}: expected a failure with code ${code}, but it succeeded`);
}

module.exports = {
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
};
