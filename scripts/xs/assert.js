// Stands in for `uvu/assert` inside the XS bundles, with uvu's semantics (messages, `throws`
// taking a string as the message, `not.*`), and deep equality after `dequal`: same constructor,
// then by content for arrays, plain objects, Map, Set, Date, RegExp, ArrayBuffer, DataView and
// every typed array (so Uint8Array compares by bytes).

export class Assertion extends Error {
  constructor(opts = {}) {
    super(opts.message);
    this.code = 'ERR_ASSERTION';
    this.details = opts.details || false;
    this.generated = !!opts.generated;
    this.operator = opts.operator;
    this.expects = opts.expects;
    this.actual = opts.actual;
  }
}

Object.defineProperty(Assertion.prototype, 'name', { value: 'Assertion' }); // Error.prototype is frozen, as on a meter

const has = Object.prototype.hasOwnProperty;

function findKey(set, key) {
  for (const k of set.keys()) if (dequal(k, key)) return k;
  return undefined;
}

export function dequal(a, b) {
  if (a === b) return true;
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ctor = a.constructor;
    if (ctor !== b.constructor) return false;
    if (ctor === Date) return a.getTime() === b.getTime();
    if (ctor === RegExp) return a.toString() === b.toString();
    if (ctor === Array) {
      if (a.length !== b.length) return false;
      for (let i = 0; i < a.length; i++) if (!dequal(a[i], b[i])) return false;
      return true;
    }
    if (ctor === Set) {
      if (a.size !== b.size) return false;
      for (let k of a) {
        if (k && typeof k === 'object') {
          k = findKey(b, k);
          if (k === undefined) return false;
        }
        if (!b.has(k)) return false;
      }
      return true;
    }
    if (ctor === Map) {
      if (a.size !== b.size) return false;
      for (const [key, value] of a) {
        let k = key;
        if (k && typeof k === 'object') {
          k = findKey(b, k);
          if (k === undefined) return false;
        }
        if (!b.has(k) || !dequal(value, b.get(k))) return false;
      }
      return true;
    }
    if (ctor === ArrayBuffer) {
      return dequal(new Uint8Array(a), new Uint8Array(b));
    }
    if (ctor === DataView) {
      if (a.byteLength !== b.byteLength) return false;
      for (let i = 0; i < a.byteLength; i++) if (a.getInt8(i) !== b.getInt8(i)) return false;
      return true;
    }
    if (ArrayBuffer.isView(a)) {
      if (a.byteLength !== b.byteLength) return false;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
      return true;
    }
    if (!ctor || typeof a === 'object') {
      let n = 0;
      for (const k in a) {
        if (has.call(a, k) && ++n && !has.call(b, k)) return false;
        if (!(k in b) || !dequal(a[k], b[k])) return false;
      }
      return Object.keys(b).length === n;
    }
  }
  return a !== a && b !== b;
}

function assert(bool, actual, expects, operator, backup, msg) {
  if (bool) return;
  if (msg instanceof Error) throw msg;
  throw new Assertion({ actual, expects, operator, message: msg || backup, generated: !msg });
}

function dedent(str) {
  str = String(str).replace(/\r?\n/g, '\n');
  const arr = str.match(/^[ \t]*(?=\S)/gm);
  let min = Infinity;
  const len = (arr || []).length;
  for (let i = 0; i < len; i++) min = Math.min(min, arr[i].length);
  return len && min ? str.replace(new RegExp(`^[ \\t]{${min}}`, 'gm'), '') : str;
}

export function ok(val, msg) {
  assert(!!val, false, true, 'ok', 'Expected value to be truthy', msg);
}

export function is(val, exp, msg) {
  assert(val === exp, val, exp, 'is', 'Expected values to be strictly equal:', msg);
}

export function equal(val, exp, msg) {
  assert(dequal(val, exp), val, exp, 'equal', 'Expected values to be deeply equal:', msg);
}

export function unreachable(msg) {
  assert(false, true, false, 'unreachable', 'Expected not to be reached!', msg);
}

export function type(val, exp, msg) {
  const tmp = typeof val;
  assert(tmp === exp, tmp, exp, 'type', `Expected "${tmp}" to be "${exp}"`, msg);
}

export function instance(val, exp, msg) {
  const name = '`' + (exp.name || exp.constructor.name) + '`';
  assert(val instanceof exp, val, exp, 'instance', `Expected value to be an instance of ${name}`, msg);
}

export function match(val, exp, msg) {
  if (typeof exp === 'string') {
    assert(val.includes(exp), val, exp, 'match', `Expected value to include "${exp}" substring`, msg);
  } else {
    assert(exp.test(val), val, exp, 'match', `Expected value to match \`${String(exp)}\` pattern`, msg);
  }
}

export function snapshot(val, exp, msg) {
  val = dedent(val);
  exp = dedent(exp);
  assert(val === exp, val, exp, 'snapshot', 'Expected value to match snapshot:', msg);
}

export function fixture(val, exp, msg) {
  val = dedent(val);
  exp = dedent(exp);
  assert(val === exp, val, exp, 'fixture', 'Expected value to match fixture:', msg);
}

export function throws(blk, exp, msg) {
  if (!msg && typeof exp === 'string') {
    msg = exp;
    exp = null;
  }
  try {
    blk();
    assert(false, false, true, 'throws', 'Expected function to throw', msg);
  } catch (err) {
    if (err instanceof Assertion) throw err;
    if (typeof exp === 'function') {
      assert(exp(err), false, true, 'throws', 'Expected function to throw matching exception', msg);
    } else if (exp instanceof RegExp) {
      assert(exp.test(err.message), false, true, 'throws', `Expected function to throw exception matching \`${String(exp)}\` pattern`, msg);
    }
  }
}

export function not(val, msg) {
  assert(!val, true, false, 'not', 'Expected value to be falsey', msg);
}

not.ok = not;

is.not = function (val, exp, msg) {
  assert(val !== exp, val, exp, 'is.not', 'Expected values not to be strictly equal', msg);
};

not.equal = function (val, exp, msg) {
  assert(!dequal(val, exp), val, exp, 'not.equal', 'Expected values not to be deeply equal', msg);
};

not.type = function (val, exp, msg) {
  const tmp = typeof val;
  assert(tmp !== exp, tmp, exp, 'not.type', `Expected "${tmp}" not to be "${exp}"`, msg);
};

not.instance = function (val, exp, msg) {
  const name = '`' + (exp.name || exp.constructor.name) + '`';
  assert(!(val instanceof exp), val, exp, 'not.instance', `Expected value not to be an instance of ${name}`, msg);
};

not.snapshot = function (val, exp, msg) {
  val = dedent(val);
  exp = dedent(exp);
  assert(val !== exp, val, exp, 'not.snapshot', 'Expected value not to match snapshot', msg);
};

not.fixture = function (val, exp, msg) {
  val = dedent(val);
  exp = dedent(exp);
  assert(val !== exp, val, exp, 'not.fixture', 'Expected value not to match fixture', msg);
};

not.match = function (val, exp, msg) {
  if (typeof exp === 'string') {
    assert(!val.includes(exp), val, exp, 'not.match', `Expected value not to include "${exp}" substring`, msg);
  } else {
    assert(!exp.test(val), val, exp, 'not.match', `Expected value not to match \`${String(exp)}\` pattern`, msg);
  }
};

not.throws = function (blk, exp, msg) {
  if (!msg && typeof exp === 'string') {
    msg = exp;
    exp = null;
  }
  try {
    blk();
  } catch (err) {
    if (typeof exp === 'function') {
      assert(!exp(err), true, false, 'not.throws', 'Expected function not to throw matching exception', msg);
    } else if (exp instanceof RegExp) {
      assert(!exp.test(err.message), true, false, 'not.throws', `Expected function not to throw exception matching \`${String(exp)}\` pattern`, msg);
    } else if (!exp) {
      assert(false, true, false, 'not.throws', 'Expected function not to throw', msg);
    }
  }
};
