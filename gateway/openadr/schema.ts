// The OpenADR 3 OpenAPI documents (schema/, 3.0.1 and 3.1.0) and a validator for their Schema Objects:
// what a VTN sends is checked against them before the VEN acts on it, and what the VEN sends is checked
// before it goes out (a bug here must not reach a utility's VTN).
//
// The validator covers the OpenAPI 3.0 subset the two documents use: $ref (within the document), type,
// nullable, required, properties, additionalProperties, items, enum, pattern, minLength/maxLength,
// minItems/maxItems, minimum/maximum with OpenAPI 3.0's boolean exclusiveMinimum/exclusiveMaximum,
// allOf, anyOf, oneOf (exactly one; `discriminator` is a hint only), and the formats date-time (RFC 3339,
// with a time zone), uri (absolute) and int32. test/gateway/openadr-schema.test.ts checks that it reaches
// Ajv's verdict on every example of test/fixtures/openadr (against the documents as published).
//
// One defect of the 3.1.0 document is mended in what load() returns: its server representations `ven` and
// `resource` are allOf objectMetadata (objectType VEN or RESOURCE) and BlVenRequest / BlResourceRequest
// (objectType BL_VEN_REQUEST / BL_RESOURCE_REQUEST), which no object can satisfy at once. There, the
// request's objectType (a discriminator of requests) is left out, so that a VTN's VEN and resource
// objects (objectType VEN, RESOURCE, as openleadr-rs sends them) validate. published() is the document
// unchanged.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const OPENADR_VERSIONS = ['3.0.1', '3.1.0'] as const;
export type OpenAdrSpecVersion = (typeof OPENADR_VERSIONS)[number];

export interface Problem {
  /** JSON pointer into the value, '' for the value itself. */
  path: string;
  message: string;
}

type Schema = { [k: string]: unknown };

export interface Operation {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** The OpenAPI path, e.g. /events/{eventID}. */
  path: string;
  operationId: string;
  /** The path as a pattern with one group per {parameter}. */
  pattern: RegExp;
  params: string[];
  op: Schema;
}

const MAX_PROBLEMS = 8;
const DIR = join(fileURLToPath(import.meta.url), '..', 'schema');
const loaded = new Map<string, OpenAdrSpec>();

export class OpenAdrSpec {
  readonly version: OpenAdrSpecVersion;
  readonly doc: Schema;
  readonly #schemas: { [name: string]: Schema };

  private constructor(version: OpenAdrSpecVersion, doc: Schema) {
    this.version = version;
    this.doc = doc;
    this.#schemas = ((doc.components as Schema)?.schemas ?? {}) as { [name: string]: Schema };
  }

  /** The document of a version (3.1.0's `ven` and `resource` mended, see above), read once per process. */
  static load(version: OpenAdrSpecVersion): OpenAdrSpec {
    return OpenAdrSpec.#read(version, true);
  }

  /** The document exactly as published. */
  static published(version: OpenAdrSpecVersion): OpenAdrSpec {
    return OpenAdrSpec.#read(version, false);
  }

  static #read(version: OpenAdrSpecVersion, mend: boolean): OpenAdrSpec {
    const key = `${version}${mend ? '' : ' as published'}`;
    let s = loaded.get(key);
    if (!s) {
      const doc = parse(readFileSync(join(DIR, `openadr3-${version}.yaml`), 'utf8')) as Schema;
      if (mend && version === '3.1.0') {
        const schemas = (doc.components as Schema).schemas as { [name: string]: Schema };
        for (const [name, request] of [['ven', 'BlVenRequest'], ['resource', 'BlResourceRequest']]) {
          const r = schemas[request];
          const properties = { ...(r.properties as Schema) };
          delete properties.objectType;
          schemas[name] = {
            ...schemas[name],
            allOf: [{ $ref: '#/components/schemas/objectMetadata' }, { ...r, properties, required: (r.required as string[]).filter((k) => k !== 'objectType') }],
          };
        }
      }
      s = new OpenAdrSpec(version, doc);
      loaded.set(key, s);
    }
    return s;
  }

  has(name: string): boolean {
    return name in this.#schemas;
  }

  /** Checks a value against a component schema (`event`, `reportRequest`, …); [] when it conforms. */
  validate(name: string, value: unknown): Problem[] {
    const schema = this.#schemas[name];
    if (!schema) throw new Error(`OpenADR ${this.version} has no schema "${name}"`);
    return this.check(schema, value);
  }

  /** Checks a value against a Schema Object of this document. */
  check(schema: unknown, value: unknown): Problem[] {
    const out: Problem[] = [];
    this.#check(schema as Schema, value, '', out, 0);
    return out;
  }

  /** The operations of the document's paths, for a server built from it. */
  operations(): Operation[] {
    const out: Operation[] = [];
    for (const [path, item] of Object.entries((this.doc.paths ?? {}) as { [p: string]: Schema })) {
      const params: string[] = [];
      const pattern = new RegExp('^' + path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_, p: string) => {
        params.push(p);
        return '([^/]+)';
      }) + '$');
      for (const method of ['get', 'post', 'put', 'delete'] as const) {
        const op = item[method] as Schema | undefined;
        if (op) out.push({ method: method.toUpperCase() as Operation['method'], path, operationId: String(op.operationId), pattern, params, op });
      }
    }
    return out;
  }

  /** The schema of an operation's request body for a media type, or undefined. */
  requestSchema(op: Operation, mediaType = 'application/json'): Schema | undefined {
    return (((op.op.requestBody as Schema)?.content as Schema)?.[mediaType] as Schema)?.schema as Schema | undefined;
  }

  /** The schema an operation's answer with this status must follow, or undefined. */
  responseSchema(op: Operation, status: number): Schema | undefined {
    let r = (op.op.responses as Schema)?.[String(status)] as Schema | undefined;
    if (r && typeof r.$ref === 'string') r = this.#resolve(r.$ref);
    return ((r?.content as Schema)?.['application/json'] as Schema)?.schema as Schema | undefined;
  }

  #resolve(ref: string): Schema {
    if (!ref.startsWith('#/')) throw new Error(`OpenADR ${this.version}: external $ref ${ref} is not supported`);
    let node: unknown = this.doc;
    for (const part of ref.slice(2).split('/')) node = (node as Schema)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    if (!node || typeof node !== 'object') throw new Error(`OpenADR ${this.version}: $ref ${ref} names nothing`);
    return node as Schema;
  }

  #check(s: Schema, v: unknown, path: string, out: Problem[], depth: number): void {
    if (out.length >= MAX_PROBLEMS) return;
    if (depth > 64) return void out.push({ path, message: 'is nested too deeply' });
    if (typeof s.$ref === 'string') s = this.#resolve(s.$ref);
    if (v === null && s.nullable === true) return;
    const add = (message: string, p = path) => void (out.length < MAX_PROBLEMS && out.push({ path: p, message }));

    if (Array.isArray(s.allOf)) for (const sub of s.allOf) this.#check(sub as Schema, v, path, out, depth + 1);
    if (Array.isArray(s.anyOf) && !s.anyOf.some((sub) => this.check(sub, v).length === 0)) add('matches none of the allowed shapes (anyOf)');
    if (Array.isArray(s.oneOf)) {
      const n = s.oneOf.filter((sub) => this.#quiet(sub as Schema, v, depth)).length;
      if (n !== 1) add(n === 0 ? 'matches none of the allowed shapes (oneOf)' : `matches ${n} of the shapes where exactly one must match (oneOf)`);
    }
    if (s.type !== undefined && !typeMatches(String(s.type), v)) {
      return add(`must be ${article(String(s.type))}${v === null ? ', not null' : ''}`);
    }
    if (Array.isArray(s.enum) && !s.enum.some((e) => e === v)) add(`must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`);

    if (typeof v === 'string') {
      const len = [...v].length;
      if (typeof s.minLength === 'number' && len < s.minLength) add(`must be at least ${s.minLength} characters long`);
      if (typeof s.maxLength === 'number' && len > s.maxLength) add(`must be at most ${s.maxLength} characters long`);
      if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) add(`must match the pattern ${s.pattern}`);
      if (s.format === 'date-time' && !isDateTime(v)) add('must be an RFC 3339 date-time with a time zone');
      if (s.format === 'uri' && !isUri(v)) add('must be an absolute URI');
    }
    if (typeof v === 'number') {
      if (typeof s.minimum === 'number' && (s.exclusiveMinimum === true ? v <= s.minimum : v < s.minimum)) add(`must be ${s.exclusiveMinimum === true ? 'above' : 'at least'} ${s.minimum}`);
      if (typeof s.maximum === 'number' && (s.exclusiveMaximum === true ? v >= s.maximum : v > s.maximum)) add(`must be ${s.exclusiveMaximum === true ? 'below' : 'at most'} ${s.maximum}`);
      if (s.format === 'int32' && !(Number.isInteger(v) && v >= -2147483648 && v <= 2147483647)) add('must be a 32-bit integer');
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) add(`must have at least ${s.minItems} items`);
      if (typeof s.maxItems === 'number' && v.length > s.maxItems) add(`must have at most ${s.maxItems} items`);
      if (s.items && typeof s.items === 'object') v.forEach((x, i) => this.#check(s.items as Schema, x, `${path}/${i}`, out, depth + 1));
    }
    if (isPlainObject(v)) {
      if (Array.isArray(s.required)) for (const k of s.required) if (!(k in v)) add(`must have the property "${k}"`);
      const props = (s.properties ?? {}) as { [k: string]: Schema };
      for (const [k, x] of Object.entries(v)) {
        const p = `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
        if (k in props) this.#check(props[k], x, p, out, depth + 1);
        else if (s.additionalProperties === false) add('is not an allowed property', p);
        else if (s.additionalProperties && typeof s.additionalProperties === 'object') this.#check(s.additionalProperties as Schema, x, p, out, depth + 1);
      }
    }
  }

  #quiet(s: Schema, v: unknown, depth: number): boolean {
    const out: Problem[] = [];
    this.#check(s, v, '', out, depth + 1);
    return out.length === 0;
  }
}

function isPlainObject(v: unknown): v is { [k: string]: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeMatches(type: string, v: unknown): boolean {
  switch (type) {
    case 'object': return isPlainObject(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'boolean': return typeof v === 'boolean';
    default: return true;
  }
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

const DATE_TIME = /^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|[+-](\d\d):?(\d\d))$/;
const DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** RFC 3339 date-time (as Ajv's `date-time` format reads it): a real date, a real time, a time zone. */
export function isDateTime(s: string): boolean {
  const m = DATE_TIME.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number);
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  if (mo < 1 || mo > 12 || d < 1 || d > (mo === 2 && leap ? 29 : DAYS[mo])) return false;
  if (m[7] !== undefined && (Number(m[7]) > 23 || Number(m[8]) > 59)) return false;
  return h <= 23 && mi <= 59 && (sec <= 59 || (sec === 60 && h === 23 && mi === 59));
}

function isUri(s: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$/.test(s)) return false;
  try {
    new URL(s);
    return true;
  } catch {
    return false;
  }
}

/** Problems as one line: `/intervals/0/id must be an integer; …`. */
export function problemText(problems: Problem[]): string {
  return problems.map((p) => `${p.path || '/'} ${p.message}`).join('; ');
}
