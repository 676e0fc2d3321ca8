import { type AttributeValue, InvalidArgumentError } from '@skiplock/schema'

/** A job's attributes: labels that workers can filter claims on. */
export type Attributes = Readonly<Record<string, AttributeValue>>

/** A worker's filter: per attribute, the one value or any of the values a job must have. */
export type AttributeFilter = Readonly<Record<string, AttributeValue | readonly AttributeValue[]>>

const MAX_ATTRIBUTES_BYTES = 1024
const MAX_KEY_LENGTH = 64
/** `{ a: [1, 2], b: [3, 4] }` is matched as 4 combinations; past this many the filter is refused. */
const MAX_FILTER_COMBINATIONS = 100

/** @throws {InvalidArgumentError} unless `attributes` is a small flat object of strings, finite numbers and booleans. */
export function checkAttributes(attributes: unknown): asserts attributes is Attributes {
  if (!isPlainObject(attributes)) throw invalid('attributes', 'expected an object of strings, numbers and booleans')
  for (const [key, value] of Object.entries(attributes)) {
    checkKey('attributes', key)
    if (!isAttributeValue(value)) throw invalid('attributes', `${JSON.stringify(key)} is ${describe(value)}, expected a string, a finite number or a boolean`)
  }
  const sizeBytes = Buffer.byteLength(JSON.stringify(attributes))
  if (sizeBytes > MAX_ATTRIBUTES_BYTES) throw invalid('attributes', `${sizeBytes} bytes of JSON, over the limit of ${MAX_ATTRIBUTES_BYTES}`)
}

/** @throws {InvalidArgumentError} unless `filter` names at least one attribute, each with a value or a non-empty array of values. */
export function checkAttributeFilter(filter: unknown): asserts filter is AttributeFilter {
  if (!isPlainObject(filter) || Object.keys(filter).length === 0) {
    throw invalid('attributeFilter', 'expected an object naming at least one attribute')
  }
  let combinations = 1
  for (const [key, value] of Object.entries(filter)) {
    checkKey('attributeFilter', key)
    const values: unknown[] = Array.isArray(value) ? value : [value]
    if (values.length === 0 || !values.every(isAttributeValue)) {
      throw invalid('attributeFilter', `${JSON.stringify(key)} is ${describe(value)}, expected a string, a finite number, a boolean or a non-empty array of them`)
    }
    combinations *= values.length
  }
  if (combinations > MAX_FILTER_COMBINATIONS) {
    throw invalid('attributeFilter', `it matches ${combinations} combinations of values, over the limit of ${MAX_FILTER_COMBINATIONS}`)
  }
}

function checkKey(argument: string, key: string): void {
  if (key.length < 1 || key.length > MAX_KEY_LENGTH || !key.isWellFormed() || key.includes('\0')) {
    throw invalid(argument, `the key ${JSON.stringify(key)} is not 1 to ${MAX_KEY_LENGTH} characters of well-formed text`)
  }
}

function isAttributeValue(value: unknown): value is AttributeValue {
  if (typeof value === 'string') return value.isWellFormed() && !value.includes('\0')
  return typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : typeof value
}

function invalid(argument: string, reason: string): InvalidArgumentError {
  return new InvalidArgumentError({ argument, reason })
}
