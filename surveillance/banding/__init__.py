"""surveillance.banding"""
