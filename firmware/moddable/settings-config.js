/*
 * Module "gridlet/settings" on a meter: the image's settings are the manifest's config, as mcconfig
 * built it (keys given on its command line included). The simulator's variant is lin/settings.js.
 */

import config from "mc/config";

export default function settings() {
	return config;
}
