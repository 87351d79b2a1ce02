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
