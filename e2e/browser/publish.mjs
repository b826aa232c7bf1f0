// publish.mjs: Debian's Chromium, driven by playwright-core, joins a
// LiveKit room with livekit-client and publishes its fake camera and
// microphone (or a screen share), the way a broadcaster's page would.
//
//   node publish.mjs --url ws://127.0.0.1:7880 --token JWT [--codec vp8|h264|vp9|av1]
//                    [--no-simulcast] [--screen] [--resolution 1280x720]
//
// It prints one JSON line once every track is published
// ({"published":true,"tracks":[...]}), answers each "stats" line on stdin
// with the encoder's view of every sent layer ({"stats":[...]}), and leaves
// the room and exits when stdin closes or on SIGTERM/SIGINT.
import { chromium } from 'playwright-core';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    codec: { type: 'string' }, // unset: livekit-client's default, VP8
    'no-simulcast': { type: 'boolean', default: false },
    screen: { type: 'boolean', default: false },
    resolution: { type: 'string' }, // unset: livekit-client's default capture, 1280x720
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!opts.url || !opts.token) {
  process.stderr.write('publish.mjs: --url and --token are required\n');
  process.exit(2);
}

// The page comes from a loopback HTTP server, as a real page would come
// from a server: Chromium's local network access checks let a page reach
// the loopback LiveKit server only from a loopback address (a page
// fulfilled by Playwright's request routing has no address and is refused),
// and http://127.0.0.1 is a secure context, which capture requires.
// require's resolution picks the package's UMD bundle (window.LivekitClient).
const bundle = await readFile(createRequire(import.meta.url).resolve('livekit-client'));
const page = '<!doctype html><title>roomcast publisher</title><link rel="icon" href="data:,"><script src="/livekit-client.umd.js"></script>';
const server = createServer((req, res) => {
  if (req.url === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end(page);
  if (req.url === '/livekit-client.umd.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
  res.writeHead(404).end();
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const profile = await mkdtemp(join(tmpdir(), 'roomcast-chromium-'));
let browser;
let closing;

// close leaves the room (so LiveKit sees the participant go at once, not
// after a timeout), stops Chromium and removes its profile; it runs once.
function close(code) {
  closing ??= (async () => {
    try {
      if (browser) {
        await browser.contexts()[0]?.pages()[0]?.evaluate(() => window.room?.disconnect()).catch(() => {});
        await browser.close();
      }
    } finally {
      await rm(profile, { recursive: true, force: true });
      server.close();
    }
    process.exit(code);
  })();
  return closing;
}

process.on('SIGTERM', () => close(0));
process.on('SIGINT', () => close(0));

try {
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    // Playwright's own defaults are replaced by the flags this machine
    // needs (it has no network but the registries: background
    // networking, component updates and sync only fail, noisily) plus the
    // fake capture devices. Playwright needs only its debugging pipe.
    ignoreDefaultArgs: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      // A test pattern and a beep for getUserMedia, without a prompt.
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--remote-debugging-pipe',
      '--no-startup-window',
    ],
    handleSIGTERM: false,
    handleSIGINT: false,
  });
  const context = await browser.newContext();
  const tab = await context.newPage();
  tab.on('console', (m) => process.stderr.write(`chromium ${m.type()}: ${m.text()}\n`));
  tab.on('pageerror', (e) => process.stderr.write(`chromium page error: ${e.message}\n`));
  await tab.goto(`${origin}/`);

  const tracks = await tab.evaluate(publishInPage, {
    url: opts.url,
    token: opts.token,
    codec: opts.codec,
    simulcast: !opts['no-simulcast'],
    screen: opts.screen,
    resolution: opts.resolution,
  });
  console.log(JSON.stringify({ published: true, tracks }));

  const input = createInterface({ input: process.stdin });
  input.on('line', async (line) => {
    if (line.trim() !== 'stats') return;
    const stats = await tab.evaluate(statsInPage).catch((e) => ({ error: e.message }));
    console.log(JSON.stringify({ stats }));
  });
  input.on('close', () => close(0));
} catch (e) {
  process.stderr.write(`publish.mjs: ${e.message}\n`);
  await close(1);
}

// publishInPage runs in Chromium: connect, publish, describe the tracks.
async function publishInPage(o) {
  const { Room, setLogLevel } = window.LivekitClient;
  setLogLevel('warn');
  const captureDefaults = {};
  if (o.resolution) {
    const [width, height] = o.resolution.split('x').map(Number);
    captureDefaults.resolution = { width, height };
  }
  const room = new Room({
    videoCaptureDefaults: captureDefaults,
    publishDefaults: { videoCodec: o.codec || undefined, simulcast: o.simulcast },
  });
  window.room = room;
  await room.connect(o.url, o.token);
  const lp = room.localParticipant;
  if (o.screen) {
    // With the fake-device flags getDisplayMedia picks a fake 1920x1080
    // "monitor" and a fake audio source, no prompt, no display needed.
    await lp.setScreenShareEnabled(true, { audio: true });
  } else {
    await lp.enableCameraAndMicrophone();
  }
  return [...lp.trackPublications.values()].map((p) => {
    const s = p.track.mediaStreamTrack.getSettings();
    return {
      sid: p.trackSid,
      kind: p.kind,
      source: p.source,
      simulcast: p.simulcasted ?? false,
      label: p.track.mediaStreamTrack.label,
      surface: s.displaySurface,
      width: s.width,
      height: s.height,
      frameRate: s.frameRate,
    };
  });
}

// statsInPage runs in Chromium: every outbound RTP stream (one per
// simulcast layer) as its encoder reports it.
async function statsInPage() {
  const out = [];
  for (const p of window.room.localParticipant.trackPublications.values()) {
    const report = await p.track.sender.getStats();
    for (const s of report.values()) {
      if (s.type !== 'outbound-rtp') continue;
      out.push({
        source: p.source,
        kind: s.kind,
        rid: s.rid,
        codec: report.get(s.codecId)?.mimeType,
        encoder: s.encoderImplementation,
        width: s.frameWidth,
        height: s.frameHeight,
        fps: s.framesPerSecond,
        framesEncoded: s.framesEncoded,
        keyFramesEncoded: s.keyFramesEncoded,
        qualityLimitation: s.qualityLimitationReason,
      });
    }
  }
  return out;
}
