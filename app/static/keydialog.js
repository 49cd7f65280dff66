// The client-key dialog: shown when the service answers 401 (or from the key button); once a
// key is given it is kept (api.js) and what was refused is done again.

import { apiKey, setApiKey } from "./api.js";

export class KeyDialog {
  constructor({ dialog, form, input, cancel, button, onKey = () => {} }) {
    Object.assign(this, { dialog, input, button });
    this.then = null; // what to do once a key is given
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      setApiKey(input.value.trim());
      dialog.close();
      onKey(); // what needed the key all along (the list of models)
      const then = this.then;
      this.then = null;
      then?.();
    });
    cancel.addEventListener("click", () => dialog.close());
    button.addEventListener("click", () => this.ask());
  }

  /** Ask for the key; `then` runs once one is given. */
  ask(then = null) {
    this.then = then;
    this.button.hidden = false;
    this.input.value = apiKey();
    if (!this.dialog.open) this.dialog.showModal();
    this.input.focus();
  }
}
