// Keeps the newest text of the message list in view while a reply streams, unless the person
// has scrolled up to read; then a "jump to newest" button appears instead.

export class FollowScroll {
  /** @param list the scrolling message list; @param jump the button that brings the newest back */
  constructor(list, jump) {
    this.list = list;
    this.jump = jump;
    this.following = true; // keep the newest text in view
    this.pinnedTop = 0; // where following last put the scroll position
    list.addEventListener("scroll", () => {
      this.following = this.nearBottom();
      if (this.following) {
        this.pinnedTop = list.scrollTop;
        jump.hidden = true;
      }
    });
    jump.addEventListener("click", () => this.restart());
  }

  nearBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 48;
  }

  toNewest() {
    this.list.scrollTop = this.list.scrollHeight;
    this.pinnedTop = this.list.scrollTop;
  }

  /** Follow again from the newest text (a new conversation shown, or the jump button). */
  restart() {
    this.following = true;
    this.jump.hidden = true;
    this.toNewest();
  }

  /** New text was shown: keep it in view, or offer the jump button if the person scrolled up. */
  keep() {
    // Scrolled up since the last pin, even if its scroll event is not dispatched yet: let go.
    if (this.following && this.list.scrollTop < this.pinnedTop - 4) this.following = false;
    if (this.following) this.toNewest();
    else this.jump.hidden = false;
  }
}
