// Fake `preference`: NVS's 15-character key limit enforced, values kept as copies.
const store = new Map<string, string | number | boolean | ArrayBuffer>();

const Preference = {
  set(domain: string, key: string, value: string | number | boolean | ArrayBuffer): void {
    if (key.length > 15 || domain.length > 15) throw new Error(`NVS key "${key}" is longer than 15 characters`);
    store.set(`${domain}/${key}`, value instanceof ArrayBuffer ? value.slice(0) : value);
  },
  get(domain: string, key: string): string | number | boolean | ArrayBuffer | undefined {
    const v = store.get(`${domain}/${key}`);
    return v instanceof ArrayBuffer ? v.slice(0) : v;
  },
  delete(domain: string, key: string): void {
    store.delete(`${domain}/${key}`);
  },
  keys(domain: string): string[] {
    return [...store.keys()].filter((k) => k.startsWith(domain + '/')).map((k) => k.slice(domain.length + 1));
  },
};

export default Preference;
