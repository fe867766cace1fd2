"""Read API for recorded Stages and Promotions: the view of someone debugging a stuck Promotion."""
