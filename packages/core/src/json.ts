import { InvalidPayloadError, PayloadTooLargeError } from '@skiplock/schema'

/** Default limit of a payload's JSON text: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576

/**
 * Deepest nesting of arrays and objects accepted. PostgreSQL parses jsonb recursively and fails with
 * "stack depth limit exceeded" somewhere past this, at a depth that depends on the server's settings.
 */
export const MAX_JSON_DEPTH = 1000

/**
 * Serialises `value` to JSON text that PostgreSQL's jsonb can store, within `maxBytes`. Like JSON, a
 * property whose value is undefined is left out; every other value JSON would drop or change silently
 * is refused.
 * @throws {InvalidPayloadError} for values JSON cannot carry (functions, symbols, bigint, NaN, Infinity,
 * cycles, undefined as the value or in an array), nesting deeper than {@link MAX_JSON_DEPTH}, or text
 * jsonb cannot store (`\u0000`, unpaired UTF-16 surrogates).
 * @throws {PayloadTooLargeError} when the JSON text is longer than `maxBytes`.
 */
export function toStorableJson(value: unknown, options: { taskName?: string; maxBytes?: number } = {}): string {
  const { taskName, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES } = options
  let json: string | undefined
  try {
    json = JSON.stringify(value, rejectUnrepresentable)
  } catch (error) {
    // JSON.stringify overflows the stack on nesting far deeper than the limit.
    const isTooDeep = error instanceof RangeError && /call stack/i.test(error.message)
    const reason = isTooDeep ? `it nests deeper than ${MAX_JSON_DEPTH} levels` : (error as Error).message
    throw new InvalidPayloadError({ taskName, reason: `it cannot be serialised to JSON (${reason})` }, { cause: error })
  }
  if (json === undefined) {
    throw new InvalidPayloadError({ taskName, reason: `${typeof value} is not a JSON value` })
  }
  if (nestingDepth(json) > MAX_JSON_DEPTH) {
    throw new InvalidPayloadError({ taskName, reason: `it cannot be serialised to JSON (it nests deeper than ${MAX_JSON_DEPTH} levels)` })
  }
  const sizeBytes = Buffer.byteLength(json)
  if (sizeBytes > maxBytes) {
    throw new PayloadTooLargeError({ taskName, sizeBytes, maxBytes })
  }
  return json
}

// Messages name the key, never the value: a payload may hold data that must not reach logs.
function rejectUnrepresentable(this: unknown, key: string, value: unknown): unknown {
  if (!isStorableText(key) || (typeof value === 'string' && !isStorableText(value))) {
    throw new TypeError(`${key ? JSON.stringify(key.toWellFormed().replaceAll('\0', '\uFFFD')) : 'it'} holds \\u0000 or an unpaired UTF-16 surrogate, which PostgreSQL jsonb cannot store`)
  }
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new TypeError(`${key ? JSON.stringify(key) : 'the value'} is ${value}, which JSON cannot carry`)
  }
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new TypeError(`${key ? JSON.stringify(key) : 'the value'} is a ${typeof value}, which JSON cannot carry`)
  }
  if (value === undefined && Array.isArray(this)) {
    throw new TypeError(`item ${key} of an array is undefined, which JSON would turn into null`)
  }
  return value
}

/**
 * The deepest nesting of arrays and objects in JSON text. Each level takes at least two characters, so
 * short text (nearly every payload) needs no scan.
 */
function nestingDepth(json: string): number {
  if (json.length <= 2 * MAX_JSON_DEPTH) return 0
  let depth = 0
  let maxDepth = 0
  let isInString = false
  for (let index = 0; index < json.length; index++) {
    const code = json.charCodeAt(index)
    if (isInString) {
      if (code === 0x5c) index++ // a backslash escapes the next character
      else if (code === 0x22) isInString = false
    } else if (code === 0x22) {
      isInString = true
    } else if (code === 0x5b || code === 0x7b) {
      depth++
      if (depth > maxDepth) maxDepth = depth
    } else if (code === 0x5d || code === 0x7d) {
      depth--
    }
  }
  return maxDepth
}

// jsonb refuses \u0000 and UTF-16 surrogates that are not part of a pair.
function isStorableText(text: string): boolean {
  return text.isWellFormed() && !text.includes('\0')
}
