// The API's address, its errors and the API key the pages share: the live dashboard and the what-if page (ES module).
// The key is kept in localStorage under KEY_STORAGE (or, where storage is disabled, for as long as the page).

export const API = new URL("api/v1/", document.baseURI);
export const KEY_STORAGE = "gigatwin.apiKey";

/** A failed request: the HTTP status (0: the service could not be reached) and the API's message. */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

let memoryKey = "";

/** The stored API key ("" when none). */
export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? memoryKey;
  } catch {
    return memoryKey;
  }
}

/** Keep ``key`` as the API key ("" forgets it). */
export function storeKey(key) {
  memoryKey = key;
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key lives as long as the page
  }
}

/**
 * Wire the page's key dialog (#key-dialog with #key-form, #key-input, #key-forget; #key-button opens it and
 * #key-message says why): a key entered or forgotten is stored and ``restart()`` runs the page again with it.
 */
export function setupKeyDialog(restart, hint) {
  const byId = (id) => document.getElementById(id);
  const dialog = byId("key-dialog");
  const input = byId("key-input");
  byId("key-form").addEventListener("submit", () => {
    const key = input.value.trim();
    input.value = "";
    if (key) {
      storeKey(key);
      restart();
    }
  });
  byId("key-forget").addEventListener("click", () => {
    storeKey("");
    input.value = "";
    dialog.close();
    restart();
  });
  byId("key-button").addEventListener("click", () => {
    byId("key-message").textContent = hint;
    if (!dialog.open) dialog.showModal();
  });
}
