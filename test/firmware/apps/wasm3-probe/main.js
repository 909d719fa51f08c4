/*
 * The wasm3 probe image: the firmware's guest engine (firmware/moddable/wasm3: guest-engine.c over
 * guest-core.c, driven by wasm3-guests.ts) on the lin simulator, running the cases of ./probe.json
 * (modules in the same folder) through test/core/support/guest-probe.ts, the runner the host's
 * engines are compared with. Prints one `probe {json}` line per step, then `probe done`.
 * Bundled with esbuild by test/firmware/wasm3-engine.test.ts; preloaded, so it only defines things
 * until the runtime calls main().
 */

import { File } from "file";
import { Wasm3Engine } from "../../../../firmware/moddable/wasm3/engine.ts";
import { runProbe } from "../../../core/support/guest-probe.ts";

function read(path, type) {
	const file = new File(path);
	try {
		return file.read(type);
	}
	finally {
		file.close();
	}
}

export default function main() {
	let script;
	try {
		script = JSON.parse(read("./probe.json", String));
	}
	catch (e) {
		trace(`probe error ./probe.json: ${e.message}\n`);
		return;
	}
	const engine = new Wasm3Engine();
	trace(`probe start ${script.cases.length} cases\n`);
	for (const c of script.cases) {
		try {
			const wasm = new Uint8Array(read("./" + c.file, ArrayBuffer));
			runProbe(engine, c, wasm, (o) => trace(`probe ${JSON.stringify(o)}\n`));
		}
		catch (e) {
			trace(`probe error ${c.name}: ${e.message}\n`);
		}
	}
	trace("probe done\n");
}
