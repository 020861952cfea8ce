"""Outside facts gathered once per sweep: IB gateway, NYSE hours, bridge files."""
