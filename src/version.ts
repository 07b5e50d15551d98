// The Picket version, reported by the CLI, the API and sensors.
export const PICKET_VERSION = '0.1.0';
