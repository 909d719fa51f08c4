/*
 * embedded:io/serial for the lin simulator, which has no UARTs: constructing one fails with a reason.
 * main.ts only creates serial ports when the config names their pins, which the lin manifest does not.
 */

class Serial {
	constructor() {
		throw new Error("no UARTs in the simulator: leave consoleRx, consoleTx and p1Rx unset");
	}
}

export default Serial;
