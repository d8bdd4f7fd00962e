"""surveillance.synth"""
