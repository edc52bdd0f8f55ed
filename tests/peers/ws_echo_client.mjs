// Node `ws` peer for tests/wsio_peers.rs: sends binary messages to a WsIo echo server, checks
// that the echoed bytes are the same stream, then closes with a code and a reason that carries
// the verdict. Usage: node ws_echo_client.mjs URL SIZES CODE REASON
// (SIZES: comma-separated message sizes; byte i of message m is (i*31 + m*7 + 1) mod 256).
import WebSocket from 'ws';

const [url, sizesArg, codeArg, reason] = process.argv.slice(2);
const sizes = sizesArg.split(',').map(Number);
const code = Number(codeArg);

function message(m, n) {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + m * 7 + 1) & 0xff;
  return bytes;
}

const sent = sizes.map((n, m) => message(m, n));
const expected = Buffer.concat(sent);
const received = [];
let receivedLen = 0;
let verdict = null;

const ws = new WebSocket(url, { maxPayload: 4 << 20 });
const safety = setTimeout(() => {
  console.log('RESULT fail: timed out');
  process.exit(3);
}, 60_000);

ws.on('open', () => {
  for (const bytes of sent) ws.send(bytes, { binary: true });
});

ws.on('message', (data, isBinary) => {
  if (!isBinary) {
    verdict = 'fail: text message from the server';
    return ws.close(code, verdict);
  }
  received.push(data);
  receivedLen += data.length;
  if (receivedLen >= expected.length && verdict === null) {
    const echo = Buffer.concat(received);
    verdict = echo.equals(expected) ? 'ok' : `fail: echo differs (${echo.length} bytes)`;
    ws.close(code, `${reason} ${verdict}`);
  }
});

ws.on('close', (closeCode, closeReason) => {
  clearTimeout(safety);
  const ok = verdict === 'ok' && closeCode === code;
  console.log(`RESULT ${ok ? 'ok' : 'fail'}: verdict=${verdict} close=${closeCode} reason=${closeReason}`);
  process.exit(ok ? 0 : 1);
});

ws.on('error', (err) => {
  console.log(`RESULT fail: ${err.message}`);
  process.exit(2);
});
