// Server-Sent Events parsing for a fetch() body: text in, complete events out.
//
// EventSource cannot POST a JSON body, so the page reads the streaming response itself.
// The parser follows the SSE rules: lines end with LF, CRLF or CR; `data` lines of one
// event are joined with LF; a blank line dispatches the event; lines starting with ":" are
// comments (the server's keepalives); `id` sets the last event id.

export class SseParser {
  /** @param {(event: {id: string|null, event: string, data: string}) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.lastEventId = null;
    this.resetEvent();
  }

  resetEvent() {
    this.eventType = "";
    this.dataLines = [];
  }

  /** Feed decoded text; every event it completes is passed to onEvent, in order. Linear in the
   * text fed: lines are found from a moving offset, and only an unfinished line is kept. */
  push(text) {
    const buffer = this.buffer + text;
    let start = 0;
    let cr = buffer.indexOf("\r"); // searched again only once passed: most streams have none
    for (;;) {
      const lf = buffer.indexOf("\n", start);
      if (cr >= 0 && cr < start) cr = buffer.indexOf("\r", start);
      if (lf < 0 && cr < 0) break;
      const end = cr < 0 || (lf >= 0 && lf < cr) ? lf : cr;
      if (end === cr && cr === buffer.length - 1) break; // may be half of a CRLF
      this.line(buffer.slice(start, end));
      start = end + (end === cr && buffer[cr + 1] === "\n" ? 2 : 1);
    }
    this.buffer = start === 0 ? buffer : buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.dataLines.length > 0) {
        this.onEvent({ id: this.lastEventId, event: this.eventType || "message", data: this.dataLines.join("\n") });
      }
      this.resetEvent();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.dataLines.push(value);
    else if (field === "event") this.eventType = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
  }
}
