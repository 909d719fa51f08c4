/*
 * embedded:io/digital for the simulator, which has no pins: an output remembers its level and
 * traces every change as "gpio <pin> <0|1>" (what a test watches to see a relay switch); an input
 * reads 0.
 */

class Digital {
	static Input = 0;
	static InputPullUp = 1;
	static InputPullDown = 2;
	static InputPullUpDown = 3;
	static Output = 8;
	static OutputOpenDrain = 9;
	static Rising = 1;
	static Falling = 2;

	#pin;
	#mode;
	#value = -1;

	constructor(options) {
		const pin = options?.pin;
		if (!Number.isInteger(pin) || pin < 0)
			throw new RangeError("invalid pin");
		this.#pin = pin;
		this.#mode = options.mode;
	}
	read() {
		return this.#mode >= Digital.Output ? Math.max(this.#value, 0) : 0;
	}
	write(value) {
		if (this.#mode < Digital.Output)
			throw new Error("not an output");
		value = value ? 1 : 0;
		if (value !== this.#value)
			trace(`gpio ${this.#pin} ${value}\n`);
		this.#value = value;
	}
	close() {
	}
	get format() {
		return "number";
	}
}

export default Digital;
