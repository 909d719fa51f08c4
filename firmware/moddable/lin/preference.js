/*
 * Module "preference" for the simulator, with the Moddable SDK's API (get, set, delete, keys) and
 * the durability of NVS on a meter: when set() returns, the value is on disk, and a kill -9 at any
 * moment leaves either the old or the new file, never none (write a temporary file, then rename it).
 * The SDK's own simulator module rewrites its file in place (delete, then write), so a crash in
 * between forgets every key: the identity and pairing with it.
 * Stored in ./preferences.json, read at the first call (this module is preloaded into the image).
 */

import { File } from "file";

const PATH = "./preferences.json";
const TEMP = "./preferences.json.new";
let cache;

function load() {
	if (cache)
		return cache;
	cache = {};
	if (File.exists(PATH)) {
		const file = new File(PATH);
		try {
			const stored = JSON.parse(file.read(String));
			for (const domain in stored) {
				cache[domain] = {};
				for (const key in stored[domain])
					cache[domain][key] = stored[domain][key];
			}
		}
		finally {
			file.close();
		}
	}
	return cache;
}

function save() {
	if (File.exists(TEMP))
		File.delete(TEMP);
	const file = new File(TEMP, true);
	try {
		file.write(JSON.stringify(cache));
	}
	finally {
		file.close();
	}
	if (!File.rename(TEMP, PATH.slice(2)))
		throw new Error(`cannot replace ${PATH}`);
}

function check(domain, key) {
	if (typeof domain !== "string" || typeof key !== "string" || !domain || !key || key.length > 15 || domain.length > 15)
		throw new Error("invalid domain or key");
}

export default class Preference {
	static set(domain, key, value) {
		check(domain, key);
		const stored = load();
		let v;
		if (value instanceof ArrayBuffer)
			v = { buffer: Array.from(new Uint8Array(value)) };
		else if (typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isInteger(value)))
			v = value;
		else
			throw new Error("invalid value");
		(stored[domain] ??= {})[key] = v;
		save();
	}
	static get(domain, key) {
		check(domain, key);
		const v = load()[domain]?.[key];
		if (v && typeof v === "object")
			return Uint8Array.from(v.buffer).buffer;
		return v;
	}
	static delete(domain, key) {
		check(domain, key);
		const stored = load();
		if (stored[domain]?.[key] === undefined)
			return;
		delete stored[domain][key];
		save();
	}
	static keys(domain) {
		return Object.keys(load()[domain] ?? {});
	}
}
