// Fakes for the socket and DNS modules the MQTT client is given (never used by the fake client).
export default class Unused {
  close(): void {}
}
