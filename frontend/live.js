// The WebSocket to /ws/workbench: reconnects with backoff and resumes where it left off, so the page
// refetches only when the gateway cannot replay what it missed.

const CLOSE_RELOAD = 4000;
const CLOSE_UNAUTHORIZED = 4401;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
const FAILED_OPENS_BEFORE_POLLING = 3;

/**
 * Opens the live connection.
 * onFrame(frame): each JSON frame, each stored event's frame once and in order;
 * onOpen({ resumed }): after every (re)connect; resumed false: the page refetches what it shows;
 * onState(state): "live" | "reconnecting" | "polling" (no socket could open: the page polls) | "unauthorized".
 */
export function connectLive({ token, onFrame, onOpen, onState }) {
  let delay = FIRST_DELAY_MS;
  let applied = null; // the highest stored-event sequence applied (or covered by a refetch); null: none yet
  let failedOpens = 0; // attempts in a row whose socket never opened
  let polling = false;

  function address() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = applied === null ? "" : `&since=${applied}`;
    return `${scheme}//${location.host}/ws/workbench?token=${encodeURIComponent(token)}${since}`;
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
    const wait = delay * (0.5 + Math.random());
    delay = Math.min(delay * 2, MAX_DELAY_MS);
    setTimeout(open, wait);
  }

  function open() {
    const socket = new WebSocket(address());
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      failedOpens = 0;
      delay = FIRST_DELAY_MS;
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", (event) => {
      if (event.code === CLOSE_UNAUTHORIZED) {
        onState("unauthorized");
        return;
      }
      if (event.code === CLOSE_RELOAD) {
        // What was missed cannot be replayed: come back at once without `since`, and refetch.
        applied = null;
        polling = false;
        onState("reconnecting");
        setTimeout(open, 0);
        return;
      }
      retry(opened);
    });
  }

  open();
}
