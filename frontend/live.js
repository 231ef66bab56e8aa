// The WebSocket to /ws/workbench: reconnects with backoff, and tells the page when to refetch.

const CLOSE_RELOAD = 4000;
const CLOSE_UNAUTHORIZED = 4401;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

/**
 * Opens the live connection.
 * onFrame(frame): each JSON frame; onOpen(): after every (re)connect, the page refetches what it shows;
 * onState(state): "live" | "reconnecting" | "unauthorized".
 */
export function connectLive({ token, onFrame, onOpen, onState }) {
  let delay = FIRST_DELAY_MS;

  function open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/workbench?token=${encodeURIComponent(token)}`);
    socket.addEventListener("open", () => {
      delay = FIRST_DELAY_MS;
      onState("live");
      onOpen();
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === CLOSE_UNAUTHORIZED) {
        onState("unauthorized");
        return;
      }
      onState("reconnecting");
      // Fell behind (CLOSE_RELOAD): come back at once; the refetch on open catches up.
      const wait = event.code === CLOSE_RELOAD ? 0 : delay * (0.5 + Math.random());
      delay = Math.min(delay * 2, MAX_DELAY_MS);
      setTimeout(open, wait);
    });
  }

  open();
}
