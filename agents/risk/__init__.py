"""The risk engine: a fixed, versioned policy applied to every open deal, every flag with evidence."""
