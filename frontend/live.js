// The WebSocket to /ws/workbench: reconnects with backoff and resumes where it left off, so the page
// refetches only when the gateway cannot replay what it missed.

const CLOSE_RELOAD = 4000; // what was missed cannot be replayed: refetch
const CLOSE_FELL_BEHIND = 4001; // this page read too slowly: resume with `since`
const CLOSE_UNAUTHORIZED = 4401;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
// A gateway that lost its place in the stream tells every open page to reload at once: each waits a
// random share of a window that doubles with every reload in a row, so their refetches spread out.
const FIRST_RELOAD_DELAY_MS = 2000;
const MAX_RELOAD_DELAY_MS = 60000;
// Falling behind costs only a replay: come back soon, a little later each time in a row.
const FIRST_RESUME_DELAY_MS = 500;
const MAX_RESUME_DELAY_MS = 5000;
const CALM_MS = 60000; // a socket open this long ends a series of closes: the next waits the first delay
const FAILED_OPENS_BEFORE_POLLING = 3;

/** A random 50-150 % of `ms`: pages told the same thing at the same moment do not act together. */
function jittered(ms) {
  return ms * (0.5 + Math.random());
}

/** A delay that doubles with each wait, up to `max`, until reset. */
function backoff(first, max) {
  let next = first;
  return {
    wait() {
      const wait = jittered(next);
      next = Math.min(next * 2, max);
      return wait;
    },
    reset() {
      next = first;
    },
  };
}

/**
 * Opens the live connection.
 * onFrame(frame): each JSON frame, each stored event's frame once and in order;
 * onOpen({ resumed }): after every (re)connect; resumed false: the page refetches what it shows;
 * onState(state): "live" | "reconnecting" | "polling" (no socket could open: the page polls) | "unauthorized".
 */
export function connectLive({ onFrame, onOpen, onState }) {
  let delay = FIRST_DELAY_MS;
  let applied = null; // the highest stored-event sequence applied (or covered by a refetch); null: none yet
  let failedOpens = 0; // attempts in a row whose socket never opened
  let polling = false;
  const reloads = backoff(FIRST_RELOAD_DELAY_MS, MAX_RELOAD_DELAY_MS);
  const resumes = backoff(FIRST_RESUME_DELAY_MS, MAX_RESUME_DELAY_MS);

  function address() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = applied === null ? "" : `?since=${applied}`;
    return `${scheme}//${location.host}/ws/workbench${since}`; // the session cookie goes along
  }

  function onHello(hello) {
    // Resumed: the missed frames follow and carry their own sequences. Otherwise the page refetches,
    // which covers everything up to the hello's sequence.
    if (!hello.resumed) applied = typeof hello.seq === "number" ? hello.seq : null;
    polling = false;
    onState("live");
    onOpen({ resumed: Boolean(hello.resumed) });
  }

  function onMessage(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "hello") {
      onHello(frame);
      return;
    }
    if (typeof frame.seq === "number") {
      if (applied !== null && frame.seq <= applied) return; // already applied
      applied = frame.seq;
    }
    onFrame(frame);
  }

  function retry(opened) {
    failedOpens = opened ? 0 : failedOpens + 1;
    if (failedOpens >= FAILED_OPENS_BEFORE_POLLING) {
      // Live updates look unavailable (a proxy without WebSockets?): the page polls meanwhile,
      // and a socket is still tried now and then.
      delay = MAX_DELAY_MS;
      if (!polling) {
        polling = true;
        onState("polling");
      }
    } else if (!polling) {
      onState("reconnecting");
    }
    const wait = jittered(delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
    setTimeout(open, wait);
  }

  function open() {
    const socket = new WebSocket(address());
    let openedAt = null;
    socket.addEventListener("open", () => {
      openedAt = Date.now();
      failedOpens = 0;
      delay = FIRST_DELAY_MS;
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", (event) => {
      if (openedAt !== null && Date.now() - openedAt >= CALM_MS) {
        reloads.reset();
        resumes.reset();
      }
      if (event.code === CLOSE_UNAUTHORIZED) {
        onState("unauthorized");
        return;
      }
      if (event.code === CLOSE_RELOAD) {
        // What was missed cannot be replayed: come back without `since`, and refetch (onOpen).
        applied = null;
        polling = false;
        onState("reconnecting");
        setTimeout(open, reloads.wait());
        return;
      }
      if (event.code === CLOSE_FELL_BEHIND) {
        // Everything up to `applied` is on the page: the gateway replays the rest.
        polling = false;
        onState("reconnecting");
        setTimeout(open, resumes.wait());
        return;
      }
      retry(openedAt !== null);
    });
  }

  open();
}
