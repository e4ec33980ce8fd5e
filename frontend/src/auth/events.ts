/** Dispatched on window by the API client when a call answers 401: the session is gone. */
export const SIGNED_OUT = 'rag:signed-out'
