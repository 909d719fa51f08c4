/*
 * Module "gridlet/settings" in the simulator: the manifest's config, overridden key by key by
 * ./gridlet-sim.json when the simulator starts in a folder that has one. One image then serves many
 * runs (a broker, a console device, relays chosen per run) without rebuilding it.
 * Called at boot, never at module load: this module is preloaded into the image.
 */

import config from "mc/config";
import { File } from "file";

const PATH = "./gridlet-sim.json";

export default function settings() {
	const merged = {};
	for (const key in config)
		merged[key] = config[key];
	if (!File.exists(PATH))
		return merged;
	const file = new File(PATH);
	let text;
	try {
		text = file.read(String);
	}
	finally {
		file.close();
	}
	let extra;
	try {
		extra = JSON.parse(text);
	}
	catch (e) {
		throw new Error(`${PATH} is not JSON: ${e.message}`);
	}
	for (const key in extra)
		merged[key] = extra[key];
	return merged;
}
