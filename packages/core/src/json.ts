import { InvalidPayloadError, PayloadTooLargeError } from '@skiplock/schema'

/** Default limit of a payload's JSON text: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576

/**
 * Serialises `value` to JSON text that PostgreSQL's jsonb can store, within `maxBytes`.
 * @throws {InvalidPayloadError} for values JSON cannot carry (functions, bigint, cycles, undefined) or jsonb cannot store.
 * @throws {PayloadTooLargeError} when the JSON text is longer than `maxBytes`.
 */
export function toStorableJson(value: unknown, options: { taskName?: string; maxBytes?: number } = {}): string {
  const { taskName, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES } = options
  let json: string | undefined
  try {
    json = JSON.stringify(value, rejectUnrepresentable)
  } catch (error) {
    throw new InvalidPayloadError({ taskName, reason: `it cannot be serialised to JSON (${(error as Error).message})` }, { cause: error })
  }
  if (json === undefined) {
    throw new InvalidPayloadError({ taskName, reason: `${typeof value} is not a JSON value` })
  }
  const sizeBytes = Buffer.byteLength(json)
  if (sizeBytes > maxBytes) {
    throw new PayloadTooLargeError({ taskName, sizeBytes, maxBytes })
  }
  return json
}

function rejectUnrepresentable(this: unknown, key: string, value: unknown): unknown {
  if (!isStorableText(key) || (typeof value === 'string' && !isStorableText(value))) {
    throw new TypeError(`${key ? `${key} holds` : 'it holds'} \\u0000 or an unpaired UTF-16 surrogate, which PostgreSQL jsonb cannot store`)
  }
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new TypeError(`${key || 'the value'} is ${value}, which JSON cannot carry`)
  }
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new TypeError(`${key || 'the value'} is a ${typeof value}, which JSON cannot carry`)
  }
  return value
}

// jsonb refuses \u0000 and UTF-16 surrogates that are not part of a pair.
function isStorableText(text: string): boolean {
  return text.isWellFormed() && !text.includes('\0')
}
