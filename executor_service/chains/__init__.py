"""Running one chain of hooks: the steps of a plan prepared and run in order through
``runner/``, their variables, the records and summaries they produce, and the event
stream a client watches."""
